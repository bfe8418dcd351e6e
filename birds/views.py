from drf_spectacular.utils import extend_schema_view
from rest_framework import viewsets
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from .filters import BirdFilter
from .models import Bird
from .pagination import CappedListPagination
from .schema import BIRD_VIEWSET_SCHEMA
from .serializers import BirdSerializer


# Reads answer straight from `.values()` rows: for these plain fields the serializer's output is the row
# itself, and skipping model instances and serializer fields makes reads several times faster. Writes, and
# the browsable API's forms, go through BirdSerializer as usual.
@extend_schema_view(**BIRD_VIEWSET_SCHEMA)
class BirdViewSet(viewsets.ModelViewSet):
    """Birds: anyone may read them; staff users may add, change and delete them."""

    queryset = Bird.objects.order_by("id")
    serializer_class = BirdSerializer
    # Permissions: REST_FRAMEWORK's DEFAULT_PERMISSION_CLASSES, IsStaffOrReadOnly (birdsite/settings.py).
    filterset_class = BirdFilter
    pagination_class = CappedListPagination

    def filter_queryset(self, queryset):
        # Without any of its parameters the FilterSet changes nothing; building its form (deep copies of
        # every filter, a new form class) would only cost time, e.g. on `?limit=` pages and single birds.
        if BirdFilter.base_filters.keys().isdisjoint(self.request.query_params.keys()):
            return queryset
        return super().filter_queryset(queryset)

    def list(self, request, *args, **kwargs):
        rows = self.filter_queryset(self.get_queryset()).values(*BirdSerializer.Meta.fields)
        return self.get_paginated_response(self.paginate_queryset(rows))

    def retrieve(self, request, *args, **kwargs):
        # IsStaffOrReadOnly has no object-level rule, so there is no object permission to check on a read.
        rows = self.filter_queryset(self.get_queryset()).values(*BirdSerializer.Meta.fields)
        return Response(get_object_or_404(rows, pk=kwargs["pk"]))
