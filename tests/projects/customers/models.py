"""Tenant tables as other packages make them, for the swappable-model tests."""

from django.db import models


class Client(models.Model):
    """Shaped like a django-tenants ``TenantMixin`` model: the schema name is the tenant id."""

    schema_name = models.CharField(max_length=63, unique=True)
    name = models.CharField(max_length=100)
    paid_until = models.DateField(null=True, blank=True)
    created_on = models.DateField(auto_now_add=True)


class Hospital(models.Model):
    """Shaped like a django-omnitenant ``BaseTenant`` model."""

    class IsolationType(models.TextChoices):
        SCHEMA = "SCH", "Schema"
        DATABASE = "DB", "Database"

    name = models.CharField(max_length=100)
    tenant_id = models.SlugField(unique=True)
    isolation_type = models.CharField(max_length=3, choices=IsolationType.choices)
    config = models.JSONField(default=dict, blank=True)
