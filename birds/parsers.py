from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.views import exception_handler


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's recursion limit a parse error (400)
    rather than a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


def api_exception_handler(exc, context):
    """DRF's handler, with a body over DATA_UPLOAD_MAX_MEMORY_SIZE a JSON 400 like every other API error
    (Django alone answers it with its HTML error page)."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = ParseError(f"The request body is larger than {limit} bytes, the most the API reads.")
    return exception_handler(exc, context)
