from django.conf import settings
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

# PostgreSQL and SQLite take OFFSET as a signed 64-bit integer; a larger one would fail in the database.
MAX_OFFSET = 2**63 - 1


class PageQuery(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1)
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_OFFSET)


class CappedListPagination(LimitOffsetPagination):
    """`?limit=` (with `?offset=`) pages the list as {"count", "next", "previous", "results"}.

    Without `limit` the list stays the plain array that old clients expect, but holds at most
    settings.BIRDS_MAX_LIST birds from `offset` on; the total goes in X-Total-Count and the rest is
    one `Link: <...>; rel="next"` away, in the same shape.
    """

    limit_query_description = "Switches to pages: the number of birds per page (at most BIRDS_MAX_LIST)."
    offset_query_description = "The position of the first bird to return (0 is the first)."

    def paginate_queryset(self, queryset, request, view=None):
        page = self.page_query(request)
        self.request = request
        self.max_limit = settings.BIRDS_MAX_LIST
        self.paged = "limit" in page
        self.limit = min(page.get("limit", self.max_limit), self.max_limit)
        self.offset = page["offset"]
        self.count = self.get_count(queryset)
        self.display_page_controls = self.paged and self.count > self.limit
        if self.offset >= self.count:
            return []
        return list(queryset[self.offset:self.offset + self.limit])

    def page_query(self, request):
        if not {self.limit_query_param, self.offset_query_param} & request.query_params.keys():
            return {"offset": 0}  # what PageQuery gives for no parameters, without building a serializer
        # A plain dict, not the QueryDict: DRF reads an empty form value as "not given", and an empty
        # `?limit=` is more likely a client's mistake than a wish for the whole list.
        query = PageQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return query.validated_data

    def get_paginated_response(self, data):
        if self.paged:
            return super().get_paginated_response(data)
        headers = {"X-Total-Count": str(self.count)}
        if self.offset + self.limit < self.count:
            rest = replace_query_param(
                self.request.build_absolute_uri(), self.offset_query_param, self.offset + self.limit
            )
            headers["Link"] = f'<{rest}>; rel="next"'
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema):
        return {"oneOf": [schema, super().get_paginated_response_schema(schema)]}

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"]["minimum"] = 1
        offset["schema"].update(minimum=0, maximum=MAX_OFFSET)
        return [limit, offset]
