from django.db import models


class Currency(models.Model):
    code = models.CharField(max_length=3, unique=True)
    name = models.CharField(max_length=60)
    symbol = models.CharField(max_length=4, blank=True, default="")
    rate = models.DecimalField(max_digits=12, decimal_places=4, default=1)
