from django.core.validators import RegexValidator
from rest_framework import serializers

from .models import Bird

# DRF strips surrounding whitespace and refuses what is left blank, and it refuses NUL characters; this
# pattern says the same in the OpenAPI schema, so that clients know before sending. The whitespace is
# spelled out because Python's \s (what str.strip() removes) and JSON Schema's \s differ: this is both.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
SOME_TEXT = RegexValidator(rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$", "Enter some text, without NUL characters.")


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
