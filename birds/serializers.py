from django.core.validators import RegexValidator
from rest_framework import serializers

from .models import Bird

# DRF strips surrounding whitespace and refuses what is left blank, and it refuses NUL characters; this
# pattern says the same in the OpenAPI schema, so that clients know before sending.
SOME_TEXT = RegexValidator(r"^[^\x00]*[^\x00\s][^\x00]*$", "Enter some text, without NUL characters.")


class TextField(serializers.CharField):
    """Takes only strings: DRF's CharField would store the JSON number 5 as "5", which the schema forbids."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BirdSerializer(serializers.ModelSerializer):
    class Meta:
        model = Bird
        fields = ["id", "name", "species"]
        extra_kwargs = {"name": {"validators": [SOME_TEXT]}, "species": {"validators": [SOME_TEXT]}}

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        return (TextField if field_class is serializers.CharField else field_class), field_kwargs
