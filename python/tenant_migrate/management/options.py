"""Options both migrate commands share, with Django's own names and help texts."""

from __future__ import annotations

import argparse
import math
from typing import Any

from django.core.management.base import CommandParser

from tenant_migrate.management.errors import Error
from tenant_migrate.run.options import MigrateOptions, split_target


def add_migrate_arguments(parser: CommandParser) -> None:
    parser.add_argument("app_label", nargs="?", help="App label of an application to synchronize the state.")
    parser.add_argument(
        "migration_name",
        nargs="?",
        help="Database state will be brought to the state after that migration. "
        'Use the name "zero" to unapply all migrations. The form "app/name.py", as printed, '
        "is accepted too.",
    )
    parser.add_argument(
        "--noinput",
        "--no-input",
        action="store_false",
        dest="interactive",
        help="Tells Django to NOT prompt the user for input of any kind.",
    )
    parser.add_argument(
        "--fake", action="store_true", help="Mark migrations as run without actually running them."
    )
    parser.add_argument(
        "--fake-initial",
        action="store_true",
        help="Detect if tables already exist and fake-apply initial migrations if so. Make "
        "sure that the current database schema matches your initial migration before using "
        "this flag. Django will only check for an existing table name.",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="Shows a list of the migration actions that will be performed.",
    )
    parser.add_argument(
        "--lock-wait",
        type=duration,
        default=MigrateOptions.lock_wait,
        metavar="SECONDS",
        help="How long to wait for another migration run of the same tenant to finish before "
        f"giving up (default {MigrateOptions.lock_wait:g}s; 0: do not wait).",
    )
    parser.add_argument(
        "--lock-timeout",
        type=duration,
        default=None,
        metavar="DURATION",
        help="Zero-downtime mode (PostgreSQL): a statement that cannot get its lock within "
        "DURATION (e.g. 2s, 500ms) is cancelled instead of queueing the application behind it; "
        "its migration is rolled back and retried (see --retries). Default: no limit.",
    )
    parser.add_argument(
        "--statement-timeout",
        type=duration,
        default=None,
        metavar="DURATION",
        help="PostgreSQL statement_timeout for the migrations' statements; a migration whose "
        "statement is cancelled by it is rolled back and retried like a lock timeout (default: the "
        "server's setting).",
    )
    parser.add_argument(
        "--retries",
        type=retry_count,
        default=MigrateOptions.retries,
        metavar="N",
        help="How many times a migration rolled back by a lock or statement timeout is retried, "
        f"with exponential back-off (default {MigrateOptions.retries}).",
    )


_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}

# Bounds of option values: beyond them a value is a typo (or 1e300), and would overflow what
# receives it (a timer, the server's lock_timeout, a 32-bit count).
MAX_SECONDS = 7 * 24 * 3600
MAX_RETRIES = 1000


def duration(text: str) -> float:
    """Seconds from ``2``, ``2s``, ``500ms`` or ``1min`` (argparse reports a bad one)."""
    value = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(unit) and value[: -len(unit)].strip():
            number, scale = value[: -len(unit)].strip(), _UNITS[unit]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        message = f"invalid duration {text!r} (examples: 2, 2s, 500ms, 1min)"
        raise argparse.ArgumentTypeError(message) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be a finite number >= 0")
    if seconds > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: must be at most {MAX_SECONDS} seconds (a week)"
        )
    return seconds


def bounded_seconds(text: str) -> float:
    """A number of seconds (``--batch-pause``, ``--heartbeat``): finite and at most MAX_SECONDS
    (a negative one is refused with the command's own message)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text} seconds: must be at most {MAX_SECONDS} (a week)")
    return seconds


def retry_count(text: str) -> int:
    """``--retries``: a whole number, at most MAX_RETRIES (a negative one is refused with the
    command's own message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: must be a whole number") from None
    if value > MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"{text} retries: must be at most {MAX_RETRIES}")
    return value


def migrate_options(options: dict[str, Any], **extra: Any) -> MigrateOptions:
    app_label, migration_name = split_target(options["app_label"], options["migration_name"])
    if migration_name and not app_label:
        raise Error("A migration name needs an app label.")
    if "heartbeat" in extra:
        extra["heartbeat"] = _seconds(extra["heartbeat"], "--heartbeat")
    return MigrateOptions(
        app_label=app_label,
        migration_name=migration_name,
        plan=options["plan"],
        fake=options["fake"],
        fake_initial=options["fake_initial"],
        interactive=options["interactive"],
        verbosity=options["verbosity"],
        lock_wait=_seconds(options.get("lock_wait", MigrateOptions.lock_wait), "--lock-wait"),
        lock_timeout=_seconds(options.get("lock_timeout"), "--lock-timeout"),
        statement_timeout=_seconds(options.get("statement_timeout"), "--statement-timeout"),
        retries=_retries(options.get("retries", MigrateOptions.retries)),
        **extra,
    )


def _retries(value: Any) -> int:
    try:
        value = retry_count(str(value))
    except argparse.ArgumentTypeError as err:
        raise Error(f"--retries: {err}") from None
    if value < 0:
        raise Error("--retries must be 0 or more.")
    return value


def _seconds(value: Any, option: str) -> Any:
    """call_command() hands keyword options over unparsed: accept them as the command line
    does, within the same bounds."""
    if value is None:
        return value
    try:
        return duration(repr(float(value)) if isinstance(value, (int, float)) else str(value))
    except argparse.ArgumentTypeError as err:
        raise Error(f"{option}: {err}") from None
