from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from birds.views import BirdViewSet

from .views import healthz

handler404 = "birdsite.views.not_found"

router = DefaultRouter()
# "/?" serves /birds and /birds/ (and /birds/1 and /birds/1/) without a redirect, as the
# tutorial's Flask API answered /birds; the constructor only takes a yes/no slash.
router.trailing_slash = "/?"
router.register("birds", BirdViewSet, basename="bird")

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^healthz/?$", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file (/api/docs/?script), which the
    # Content-Security-Policy allows, instead of inline; nor does it weaken Cross-Origin-Opener-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("", include(router.urls)),
]
