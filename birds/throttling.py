import logging

from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle

logger = logging.getLogger(__name__)


class AnonRateThrottleFailingOpen(AnonRateThrottle):
    """DRF's anonymous throttle, except that a shared cache (Redis) that does not answer lets the request
    through, with a warning in the log, instead of failing it with a 500: reads matter more than limits."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning("Anonymous throttling skipped: the cache at REDIS_URL did not answer (%s).", exc)
            return True
