import django_filters
from django.db.models import Q

from .models import Bird


class OrderingWithIdTieBreak(django_filters.OrderingFilter):
    def filter(self, qs, value):
        # Birds that share a name or species would otherwise come back in any order, and pages of a
        # sorted list could repeat or skip birds.
        return super().filter(qs, [*value, "id"]) if value else qs


class BirdFilter(django_filters.FilterSet):
    """The list's query parameters. A bad value fails the form, which the API answers with a 400."""

    species = django_filters.CharFilter(lookup_expr="iexact", help_text="Exact species, ignoring case.")
    # icontains rather than contains: SQLite's LIKE ignores case anyway, so only this behaves alike on
    # PostgreSQL and SQLite.
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name, ignoring case.")
    search = django_filters.CharFilter(
        method="search_name_and_species",
        help_text="Words that must each appear in the name or the species, ignoring case.",
    )
    ordering = OrderingWithIdTieBreak(
        fields=["id", "name", "species"],
        help_text="Comma-separated fields to sort by (id, name, species); a leading - sorts descending.",
    )

    class Meta:
        model = Bird
        fields = ["species", "name"]

    def search_name_and_species(self, queryset, name, value):
        for word in value.split():
            queryset = queryset.filter(Q(name__icontains=word) | Q(species__icontains=word))
        return queryset
