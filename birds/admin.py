from django.contrib import admin

from .models import Bird


@admin.register(Bird)
class BirdAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "species"]
    search_fields = ["name", "species"]
    ordering = ["id"]
