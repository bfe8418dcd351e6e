from rest_framework import viewsets

from .models import Bird
from .permissions import IsStaffOrReadOnly
from .serializers import BirdSerializer


class BirdViewSet(viewsets.ModelViewSet):
    queryset = Bird.objects.order_by("id")
    serializer_class = BirdSerializer
    permission_classes = [IsStaffOrReadOnly]
