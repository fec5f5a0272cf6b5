"""``post_migrate``'s built-in receivers, batched for a tenant.

contenttypes' ``create_contenttypes`` and auth's ``create_permissions`` compute the same rows
for every tenant at the same state, then ask the database, app by app: about three queries
per app and one per statement more for the search path of a schema tenant, under the
process-wide Django lock. Here the rows each app wants come from the shared post-migrate
state once per state, and a tenant's missing rows are found and inserted in one transaction
of at most four statements.

The result is Django's, row for row and id for id: the same rows inserted in the same order
(content types app by app in the receivers' order, each app's models in the order its
Django version uses; then permissions likewise), under the same conditions (the state's
models, the routers, an app without models). Receivers run in Django's order: the built-in
ones are deferred and batched only until another receiver runs (except a few that touch no
database, ``DATABASE_FREE``), so that any third-party receiver sees exactly the rows it would
see under Django. Where this module cannot promise
that, Django's receivers run as they are: ``verbosity`` 2 and up (they print each row they
add), asynchronous receivers, a content type the routers keep out of the tenant, a Django
version whose receivers were not compared with this (``VERIFIED``), or
``TENANT_MIGRATE["BATCH_POST_MIGRATE"] = False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django
from django.db import router, transaction

from .. import conf

# The Django versions whose create_contenttypes and create_permissions this reproduces
# (read side by side: 4.2, 5.2 and 6.0 differ in the order of a new app's content types and in
# when create_permissions gives up).
VERIFIED = {(4, 2), (5, 2), (6, 0)}
_CONTENT_TYPES = ("django.contrib.contenttypes.management", "create_contenttypes")
_PERMISSIONS = ("django.contrib.auth.management", "create_permissions")
# Receivers of popular apps, connected for every app, that touch no database: deferring the
# built-in receivers past them changes nothing they see, so one flush serves a whole tenant.
DATABASE_FREE = {
    # Clears guardian's in-process content type cache (lru_cache).
    ("guardian.shortcuts", "clear_ct_cache"),
    # Reconnects Wagtail's post_save/post_delete reference-index handlers.
    ("wagtail.signal_handlers", "connect_reference_index_signal_handlers"),
}
# An app's wanted content types (model names) and permissions (model, codename, name).
Rows = tuple[list[str], list[tuple[str, str, str]]]
# The wanted rows of each app, kept on the shared post-migrate state they derive from.
_CACHE_ATTRIBUTE = "_tenant_migrate_builtin_rows"


def _name(receiver: Any) -> tuple[str, str]:
    return getattr(receiver, "__module__", ""), getattr(receiver, "__qualname__", "")


def sync_receivers(signal: Any, sender: Any) -> list[Callable[..., Any]] | None:
    """The receivers ``signal.send`` would call for ``sender``, in its order; None if some
    are asynchronous (Django 5+ gathers those after the others: left to ``send``)."""
    live = signal._live_receivers(sender)
    if isinstance(live, tuple):  # Django 5.0+: (sync, async)
        synchronous, asynchronous = live
        return None if asynchronous else list(synchronous)
    return list(live)


class Batch:
    """One tenant's deferred built-in receivers, for one ``post_migrate`` emission."""

    def __init__(self, alias: str, apps: Any, content_type: Any, permission: Any | None) -> None:
        self.alias = alias
        self.apps = apps
        self.content_type = content_type
        # None where create_permissions creates no permission (no Permission model in the
        # state, or the routers keep it out of the tenant).
        self.permission = permission
        # (app label, with permissions), in the order Django's receivers would have run.
        self.pending: list[tuple[str, bool]] = []

    @classmethod
    def start(cls, alias: str, verbosity: int, apps: Any) -> Batch | None:
        """A batch for this emission, or None where Django's receivers must run as they are."""
        if not conf.get("BATCH_POST_MIGRATE") or verbosity >= 2 or django.VERSION[:2] not in VERIFIED:
            return None
        try:
            content_type = apps.get_model("contenttypes", "ContentType")
        except LookupError:
            return None
        if not router.allow_migrate_model(alias, content_type):
            # create_permissions would then create content types one by one (get_or_create).
            return None
        try:
            permission = apps.get_model("auth", "Permission")
        except LookupError:
            permission = None
        if permission is not None and not router.allow_migrate_model(alias, permission):
            permission = None
        return cls(alias, apps, content_type, permission)

    def must_flush_before(self, receiver: Any) -> bool:
        return _name(receiver) not in DATABASE_FREE

    def defer(self, receiver: Any, app_label: str) -> bool:
        """Take a built-in receiver's call for ``app_label``; False for any other receiver."""
        name = _name(receiver)
        if name == _CONTENT_TYPES:
            self.pending.append((app_label, False))
        elif name == _PERMISSIONS:
            if self.permission is not None:
                self.pending.append((app_label, True))
            elif django.VERSION < (5, 0):
                # Django 4.2's create_permissions creates the app's content types before it
                # looks for the Permission model; 5.0 and later look first.
                self.pending.append((app_label, False))
        else:
            return False
        return True

    def flush(self) -> None:
        """Run the deferred calls: what they would have inserted, in their order."""
        self.clear_cache()
        self.write()

    def clear_cache(self) -> None:
        """What the deferred calls do first, as each create_contenttypes call does: under the
        Django lock, where the receivers that read the cache run."""
        if self.pending:
            self.content_type.objects.clear_cache()

    def write(self) -> None:
        """The rows the deferred calls would have inserted, in their order: statements on the
        tenant's own connection and nothing else, so that the last flush of an emission can
        run outside the Django lock (see ``emit``)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        content_type, alias = self.content_type, self.alias
        labels = list(dict.fromkeys(label for label, _ in pending))
        with_permissions = list(dict.fromkeys(label for label, perms in pending if perms))
        # One transaction: one search path for the statements, and no content types left
        # without their permissions by an error between the two inserts.
        with transaction.atomic(using=alias):
            # One query for both: the content types of these apps and, joined, the codenames
            # of their permissions (Permission's foreign key has no related name: the reverse
            # query name is "permission"; content types without any come once, with None).
            joined = ("permission__codename",) if with_permissions else ()
            ids: dict[tuple[str, str], Any] = {}
            present: set[tuple[Any, str]] = set()
            for pk, app, model, *codename in (
                content_type.objects.using(alias)
                .filter(app_label__in=labels)
                .values_list("pk", "app_label", "model", *joined)
            ):
                ids[(app, model)] = pk
                if codename and codename[0] is not None:
                    present.add((pk, codename[0]))
            missing = [
                content_type(app_label=label, model=model)
                for label in labels
                for model in self._rows(label)[0]
                if (label, model) not in ids
            ]
            content_type.objects.using(alias).bulk_create(missing)
            if not with_permissions:
                return
            if any(row.pk is None for row in missing):  # a backend that returns no ids
                ids = dict(
                    ((app, model), pk)
                    for pk, app, model in content_type.objects.using(alias)
                    .filter(app_label__in=with_permissions)
                    .values_list("pk", "app_label", "model")
                )
            else:
                ids.update(((row.app_label, row.model), row.pk) for row in missing)
            self._insert_permissions(with_permissions, ids, present)

    def _insert_permissions(
        self, labels: list[str], ids: dict[tuple[str, str], Any], present: set[tuple[Any, str]]
    ) -> None:
        """Insert the wanted permissions not ``present`` (content type id, codename): a
        content type created by this flush has none yet."""
        permission, alias = self.permission, self.alias
        assert permission is not None
        permission.objects.using(alias).bulk_create(
            [
                permission(content_type_id=ids[(label, model)], codename=codename, name=name)
                for label in labels
                for model, codename, name in self._rows(label)[1]
                if (ids[(label, model)], codename) not in present
            ]
        )

    def _rows(self, label: str) -> Rows:
        """The content types (model names) and permissions (model, codename, name) the
        receivers want for ``label`` at this state, in the order they insert them."""
        cache: dict[tuple[str, bool], Any] = self.apps.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
        key = (label, self.permission is not None)
        if key not in cache:
            cache[key] = _wanted_rows(self.apps, *key)
        return cache[key]  # type: ignore[no-any-return]


def _wanted_rows(apps: Any, label: str, permissions_too: bool) -> Rows:
    try:
        app_config = apps.get_app_config(label)
    except LookupError:
        return [], []
    models = list(app_config.get_models())
    names = [model._meta.model_name for model in models]
    # Django 6.0 inserts an app's new content types sorted by model name; earlier versions
    # in the order of the app's models.
    content_types = sorted(set(names)) if django.VERSION >= (6, 0) else list(dict.fromkeys(names))
    permissions: list[tuple[str, str, str]] = []
    if models and permissions_too:
        # Imported only where auth's receiver runs: a project may leave auth out.
        from django.contrib.auth.management import _get_all_permissions

        permissions = [
            (model._meta.model_name, codename, name)
            for model in models
            for codename, name in _get_all_permissions(model._meta)
        ]
    return content_types, permissions
