from django.db import DatabaseError, connection
from django.http import JsonResponse


def healthz(request):
    """200 when the database answers a query, 503 when it does not (for Render's health check)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def not_found(request, exception):
    # Any unknown URL, e.g. /birds/1.5, answers like the API's own 404s rather than with an HTML page.
    return JsonResponse({"detail": "Not found."}, status=404)
