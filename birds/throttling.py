import contextlib
import logging

from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle

from .clients import client_address

logger = logging.getLogger(__name__)


class AnonWindowThrottle(AnonRateThrottle):
    """DRF's anonymous rate ("120/minute") held by a counter: at most that many requests from one address
    in a window that opens with its first request, after which 429 says how long until the window closes.

    DRF's own throttle keeps one timestamp per request in a list that every request reads and writes back
    whole: its cost grows with the rate, and two workers that read the list at once each write back their
    own, so one of the two requests goes uncounted. Here a request is one atomic `incr`, whatever the rate
    and however many workers and instances share the cache (Redis). A cache that does not answer lets the
    request through, with a warning in the log: reads matter more than limits.
    """

    def get_ident(self, request):
        return client_address(request)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:  # an authenticated user
            return True
        try:
            return self.count_request()
        except RedisError as exc:
            logger.warning("Anonymous throttling skipped: the cache at REDIS_URL did not answer (%s).", exc)
            return True

    def count_request(self):
        try:
            count = self.cache.incr(self.key)
        except ValueError:  # no open window; another worker may be opening one right now, hence add()
            self.cache.add(self.key, 0, self.duration)
            count = self.cache.incr(self.key)
        if count == 1:
            # touch(): an incr that raced the key's expiry would have made a counter that never expires.
            self.cache.touch(self.key, self.duration)
            self.cache.set(self.opened_key, self.timer(), self.duration)
        if count > self.num_requests:
            self.uncount()  # as with DRF, a refused request does not use up the next window's budget
            return False
        return True

    def uncount(self):
        with contextlib.suppress(ValueError):  # the window closed meanwhile
            self.cache.decr(self.key)

    @property
    def opened_key(self):
        return f"{self.key}_opened"

    def wait(self):
        try:
            opened = self.cache.get(self.opened_key)
        except RedisError:
            return None
        return None if opened is None else max(opened + self.duration - self.timer(), 0)
