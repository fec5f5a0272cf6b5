from django.apps import AppConfig
from django.db import OperationalError, ProgrammingError, connection, connections
from django.db.models.signals import post_migrate


def probe_optional_feature(sender, **kwargs):
    """A feature whose table may not exist yet: query it, shrug if it is missing. Under
    Django's migrate ``connection`` is in autocommit, so the failed query costs nothing to the
    handlers that run after it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM optional_feature_table")
    except (ProgrammingError, OperationalError):
        return


def probe_optional_feature_on_using(sender, using, **kwargs):
    """The same probe, by a receiver that honours ``using`` (as Django's own do)."""
    try:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT 1 FROM optional_feature_table")
    except (ProgrammingError, OperationalError):
        return


def ensure_post_migrate_footprint(sender, **kwargs):
    """The usual "make sure this row exists" receiver: the real model, its default manager."""
    from .models import Footprint
    from .places import current_place

    Footprint.objects.get_or_create(kind="post_migrate", defaults={"place": current_place()})


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The probes run first: every handler after them (this app's and the next apps'
        # content types and permissions) must still work.
        post_migrate.connect(probe_optional_feature, sender=self)
        post_migrate.connect(probe_optional_feature_on_using, sender=self)
        post_migrate.connect(ensure_post_migrate_footprint, sender=self)
