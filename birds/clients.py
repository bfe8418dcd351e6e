"""The client's address as the platform's proxies saw it: what the anonymous throttle counts by and what
the admin's login lockout (django-axes) locks, so that both see the same clients."""
import functools
import ipaddress
import logging

from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)


def client_address(request):
    """The entry NUM_PROXIES from the right of X-Forwarded-For, or the connection's address.

    Each of the NUM_PROXIES proxies appends the address it saw, so that entry is the one the outermost
    proxy saw: the client cannot choose it. An entry that is not an IP address was not written by a
    proxy (a chain shorter than NUM_PROXIES leaves the client's own entries there): it is no client, and
    counting it would give every made-up string a budget of its own.
    """
    connection = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    num_proxies = api_settings.NUM_PROXIES
    if not num_proxies or not forwarded:
        return connection
    entries = forwarded.split(",")
    entry = entries[-min(num_proxies, len(entries))].strip()
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        warn_once_of_an_entry_that_is_no_address()
        return connection


@functools.cache
def warn_once_of_an_entry_that_is_no_address():
    # Once per process: anyone can send such headers, and one line per request would flood the log.
    logger.warning(
        "X-Forwarded-For held an entry that is not an IP address where NUM_PROXIES=%s expects the client's: "
        "such requests count by the connection's address. If no client sent them, NUM_PROXIES is too large "
        "(see the README's \"Several instances\"). Logged once per process.",
        api_settings.NUM_PROXIES,
    )
