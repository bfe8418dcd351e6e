from drf_spectacular.utils import extend_schema_view
from rest_framework import viewsets

from .filters import BirdFilter
from .models import Bird
from .pagination import CappedListPagination
from .permissions import IsStaffOrReadOnly
from .schema import BIRD_VIEWSET_SCHEMA
from .serializers import BirdSerializer


@extend_schema_view(**BIRD_VIEWSET_SCHEMA)
class BirdViewSet(viewsets.ModelViewSet):
    queryset = Bird.objects.order_by("id")
    serializer_class = BirdSerializer
    permission_classes = [IsStaffOrReadOnly]
    filterset_class = BirdFilter
    pagination_class = CappedListPagination
