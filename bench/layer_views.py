"""The layers between bench/bare_app.py and the site, for bench/layers.py: each view answers
/…/<id> with the bird's JSON, one more piece of the site's stack at a time."""
import orjson
from django.db import connection
from django.http import HttpResponse
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from birds.models import Bird

FIELDS = ("id", "name", "species")


def fixed(request, pk):
    return HttpResponse(b'{"id":1,"name":"Robin","species":"Turdus migratorius"}', content_type="application/json")


def bird_from_sql(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name, species FROM birds WHERE id = %s", [pk])
        return dict(zip(FIELDS, cursor.fetchone(), strict=True))


def sql(request, pk):
    return HttpResponse(orjson.dumps(bird_from_sql(pk)), content_type="application/json")


def orm(request, pk):
    return HttpResponse(orjson.dumps(Bird.objects.values(*FIELDS).get(pk=pk)), content_type="application/json")


class BirdFromSQL(APIView):
    """The site's DRF settings: authentication, permission, throttle, renderers, negotiation."""

    def get(self, request, pk):
        return Response(bird_from_sql(pk))


class BareBirdFromSQL(BirdFromSQL):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()


urlpatterns = [
    path("fixed/<int:pk>", fixed),
    path("sql/<int:pk>", sql),
    path("orm/<int:pk>", orm),
    path("drf-bare/<int:pk>", BareBirdFromSQL.as_view()),
    path("drf/<int:pk>", BirdFromSQL.as_view()),
    path("", include("birdsite.urls")),
]
