"""The tenant and domain models django-tenants requires (its registry, like tenant_migrate's)."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = False  # the bench clones schemas itself, for both tools alike


class Domain(DomainMixin):
    pass
