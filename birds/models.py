from django.db import models


class Bird(models.Model):
    # An integer id in a table named `birds`, as the tutorial's Flask app created it, so that
    # `migrate --fake-initial` can take over an existing database.
    id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=200)
    species = models.CharField(max_length=200)

    class Meta:
        db_table = "birds"
        ordering = ["id"]

    def __str__(self):
        return f"{self.name} ({self.species})"
