import sys

from django.apps import AppConfig


class TenantMigrateConfig(AppConfig):
    name = "tenant_migrate"
    verbose_name = "Tenant migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            aliases,
            checks,  # noqa: F401  (registers the system checks)
            context,
            recorder,
            search_path,
        )

        search_path.install_signal_handlers()
        context.install_content_type_cache()
        recorder.install()
        aliases.install()
        # Django makes a command's parser (and its --database choices) right after setup.
        aliases.register_from_argv(sys.argv)
