"""``pre_migrate`` and ``post_migrate`` for one tenant, as Django's migrate sends them."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import signals

from .. import conf
from ..output import Output
from .builtin_receivers import Batch, sync_receivers
from .options import MigrateOptions


def emit(
    signal: Any, out: Output, alias: str, opts: MigrateOptions, state_apps: Any, plan: Any
) -> Batch | None:
    """Django's emit_pre/post_migrate_signal, for the tenant apps only. As under Django, the
    receivers run in autocommit, in no transaction of ours: one that catches a database error
    (an optional table) and carries on leaves nothing broken behind.

    Returns the built-in receivers' rows not yet written (``post_migrate``), deferred past
    every other receiver: the caller writes them (``Batch.write``) once it has let go of the
    Django lock, so that another tenant's Django work need not wait for these round trips
    (written here, under the lock, where making such rows runs receivers)."""
    when = "pre" if signal is signals.pre_migrate else "post"
    batch = Batch.start(alias, opts.verbosity, state_apps) if signal is signals.post_migrate else None
    for app_config in global_apps.get_app_configs():
        if app_config.models_module is None or not conf.is_tenant_app(app_config.label):
            continue
        out.write(f"Running {when}-migrate handlers for application {app_config.label}", min_verbosity=2)
        named = {
            "app_config": app_config,
            "verbosity": opts.verbosity,
            "interactive": opts.interactive,
            "using": alias,
            "stdout": out.stdout,
            "apps": state_apps,
            "plan": plan,
        }
        receivers = sync_receivers(signal, app_config) if batch is not None else None
        if batch is None or receivers is None:
            if batch is not None:
                batch.flush()
            signal.send(sender=app_config, **named)
            continue
        # As Signal.send, but the built-in receivers batched (see builtin_receivers).
        for receiver in receivers:
            if not batch.defer(receiver, app_config.label):
                if batch.must_flush_before(receiver):
                    batch.flush()
                receiver(signal=signal, sender=app_config, **named)
    if batch is not None:
        batch.clear_cache()
        if heard(*(model for model in (batch.content_type, batch.permission) if model is not None)):
            batch.write()
    return batch


def heard(*models: Any) -> bool:
    """Whether making and saving rows of ``models`` runs receivers: code not Django's, which
    takes its turn under the Django lock."""
    return any(
        signal.has_listeners(model)
        for signal in (signals.pre_init, signals.post_init, signals.pre_save, signals.post_save)
        for model in models
    )


def post_migrate_apps(post_state: ProjectState) -> Any:
    """Django's re-rendering of the final state before ``post_migrate`` (migrate.py)."""
    post_state.clear_delayed_apps_cache()
    post_apps = post_state.apps
    with post_apps.bulk_update():
        model_keys = []
        for model_state in post_apps.real_models:
            model_key = model_state.app_label, model_state.name_lower
            model_keys.append(model_key)
            post_apps.unregister_model(*model_key)
    post_apps.render_multiple([ModelState.from_model(global_apps.get_model(*model)) for model in model_keys])
    return post_apps
