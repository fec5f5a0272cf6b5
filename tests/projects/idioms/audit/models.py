from django.db import models


class Footprint(models.Model):
    """A row left by a migration or a receiver: what wrote it (``kind``) and where
    ``django.db.connection`` pointed at the time (``place``)."""

    kind = models.CharField(max_length=40)
    place = models.CharField(max_length=200)
    note = models.CharField(max_length=200, blank=True, default="")
