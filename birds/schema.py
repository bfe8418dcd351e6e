"""What the OpenAPI schema says that drf-spectacular cannot read from the code: the error bodies,
the list's headers, that reading needs no login, and that strings hold no NUL characters."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from .serializers import BirdSerializer

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# Field name (or "detail", "non_field_errors") to its messages, e.g. {"name": ["This field may not be blank."]}.
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}

BAD_REQUEST = OpenApiResponse(FIELD_ERRORS, description="A parameter or field is invalid; the body says which.")
FORBIDDEN = OpenApiResponse(DETAIL, description="Changing birds needs a staff user's session or token.")
NOT_FOUND = OpenApiResponse(DETAIL, description="No bird has this id.")
THROTTLED = OpenApiResponse(DETAIL, description="Too many anonymous requests; Retry-After says when to retry.")

LIST_HEADERS = [
    OpenApiParameter(
        "X-Total-Count", int, OpenApiParameter.HEADER, response=[200],
        description="Without `limit`: how many birds match, also those past the plain array's cap.",
    ),
    OpenApiParameter(
        "Link", str, OpenApiParameter.HEADER, response=[200],
        description='Without `limit`, when birds are left out: `<URL>; rel="next"` for the next ones.',
    ),
]

# Anonymous reading is allowed: say so, next to the two ways to log in.
OPTIONAL_LOGIN = [{"cookieAuth": []}, {"tokenAuth": []}, {}]

BIRD_VIEWSET_SCHEMA = {
    "list": extend_schema(
        auth=OPTIONAL_LOGIN, parameters=LIST_HEADERS,
        responses={200: BirdSerializer(many=True), 400: BAD_REQUEST, 429: THROTTLED},
    ),
    "retrieve": extend_schema(auth=OPTIONAL_LOGIN, responses={200: BirdSerializer, 404: NOT_FOUND, 429: THROTTLED}),
    "create": extend_schema(responses={201: BirdSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 429: THROTTLED}),
    "update": extend_schema(
        responses={200: BirdSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND, 429: THROTTLED}
    ),
    "partial_update": extend_schema(
        responses={200: BirdSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND, 429: THROTTLED}
    ),
    "destroy": extend_schema(responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND, 429: THROTTLED}),
}


# Django's form and serializer fields refuse NUL characters (PostgreSQL cannot store them) with a 400.
NO_NULL_CHARACTERS = r"^[^\x00]*$"


def forbid_null_characters(result, generator, request, public):
    """drf-spectacular post-processing hook: give every free-text string the NO_NULL_CHARACTERS pattern."""
    pending = [result]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == "string" and not {"enum", "format", "pattern"} & node.keys():
                node["pattern"] = NO_NULL_CHARACTERS
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return result
