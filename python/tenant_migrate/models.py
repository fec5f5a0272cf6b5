from django.core.validators import RegexValidator
from django.db import models

# Lower case so that it makes a valid, unambiguous PostgreSQL schema or database name and a
# portable file name; at most 63 bytes, PostgreSQL's identifier limit.
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}\Z"
TENANT_ID_HELP = (
    "1 to 63 characters: lower-case letters, digits, '_' and '-', starting with a letter or digit."
)

validate_tenant_id = RegexValidator(TENANT_ID_PATTERN, f"Invalid tenant id. {TENANT_ID_HELP}")


class Tenant(models.Model):
    class Isolation(models.TextChoices):
        DATABASE = "database", "Own database"
        SCHEMA = "schema", "Own schema in a shared PostgreSQL database"

    tenant_id = models.CharField(
        max_length=63, unique=True, validators=[validate_tenant_id], help_text=TENANT_ID_HELP
    )
    name = models.CharField(max_length=200)
    isolation = models.CharField(max_length=16, choices=Isolation.choices)
    # Database isolation: the database name (PostgreSQL) or file stem (SQLite).
    database_name = models.CharField(max_length=255, blank=True, default="")
    # Schema isolation: the schema in the shared database.
    schema_name = models.CharField(max_length=63, blank=True, default="")
    # Overrides of the base database settings for this tenant: HOST, PORT, USER, PASSWORD.
    connection = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tenant_migrate_tenant"
        ordering = ["tenant_id"]
        # Like auth.User: TENANT_MIGRATE_TENANT_MODEL = "app_label.Model" replaces this model
        # (and its table) with a project's own; see registry.py.
        swappable = "TENANT_MIGRATE_TENANT_MODEL"

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"


class MigrationRun(models.Model):
    """One ``migratealltenants`` run that migrated (not ``--plan`` or ``--check``): the journal
    ``--resume`` reads."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running (or interrupted)"
        SUCCEEDED = "succeeded", "Every tenant finished"
        FAILED = "failed", "Some tenants failed or were not reached"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The target and the options that decide what ran (app_label, migration_name, fake...).
    arguments = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "tenant_migrate_migrationrun"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Run #{self.pk} ({self.status})"


class MigrationRunTenant(models.Model):
    """One tenant of a run; ``not-reached`` until its outcome is known."""

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="tenants")
    tenant_id = models.CharField(max_length=63)
    position = models.PositiveIntegerField()
    # not-reached, migrated, up-to-date, failed, skipped, missing
    status = models.CharField(max_length=16, default="not-reached")
    error = models.TextField(blank=True, default="")
    seconds = models.FloatField(default=0.0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenant_migrate_migrationruntenant"
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "tenant_id"], name="tenant_migrate_run_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.status}"
