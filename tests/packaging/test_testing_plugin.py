"""tenant_migrate.testing, the fixtures users put in their own tests: in this process (no
pytest-django), and in a user's test run with pytest-django on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from helpers.project import EXAMPLE
from tenant_migrate.registry import get_tenant_model
from tenant_migrate.testing import TemporaryTenant


@pytest.fixture(scope="module", autouse=True)
def master() -> None:
    call_command("migrate", interactive=False, verbosity=0)


def test_tenant_is_migrated_and_reachable_by_alias(tenant: TemporaryTenant) -> None:
    from products.models import Product

    assert tenant.isolation == "database" and tenant.schema is None
    assert (
        tenant.output.splitlines()[-1]
        == f"Migrations completed successfully for tenant '{tenant.tenant_id}'."
    )
    Product.objects.using(tenant.alias).create(sku="a-1", name="A", price=1)
    assert list(Product.objects.using(tenant.alias).values_list("sku", flat=True)) == ["a-1"]
    assert get_tenant_model()._default_manager.filter(tenant_id=tenant.tenant_id).exists()


@pytest.fixture
def after_teardown() -> Iterator[list[Callable[[], None]]]:
    """Checks to run once the fixtures requested after this one are torn down."""
    checks: list[Callable[[], None]] = []
    yield checks
    for check in checks:
        check()


def test_factory_tenants_are_separate_and_torn_down(
    after_teardown: list[Callable[[], None]], tenant_factory: Callable[..., TemporaryTenant]
) -> None:
    from products.models import Product

    first = tenant_factory("plugin-first", name="First")
    second = tenant_factory(app_label="users")
    Product.objects.using(first.alias).create(sku="only-first", name="A", price=1)
    assert "products_product" not in connections[second.alias].introspection.table_names()
    assert Product.objects.using(first.alias).count() == 1
    files = [Path(t.settings_dict["NAME"]) for t in (first, second)]
    assert all(f.exists() for f in files)

    def gone() -> None:
        assert not any(f.exists() for f in files)
        assert not get_tenant_model()._default_manager.filter(tenant_id="plugin-first").exists()

    after_teardown.append(gone)


USER_CONFTEST = 'pytest_plugins = ["tenant_migrate.testing"]\n'
USER_TESTS = """
import os

import pytest
from django.db import connection
from products.models import Product

from tenant_migrate.registry import get_tenant_model

MADE = []


@pytest.mark.django_db
def test_with_a_tenant(tenant, tenant_factory):
    Product.objects.using(tenant.alias).create(sku="t-1", name="T", price=1)
    other = tenant_factory(isolation=ISOLATION)
    assert list(Product.objects.using(tenant.alias).values_list("sku", flat=True)) == ["t-1"]
    assert Product.objects.using(other.alias).count() == 0
    MADE.extend([tenant, other])


@pytest.mark.django_db
def test_everything_was_removed():
    assert len(MADE) == 2
    for made in MADE:
        assert not get_tenant_model().objects.filter(tenant_id=made.tenant_id).exists()
        if made.schema is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [made.schema])
                assert cursor.fetchone()[0] == 0
        elif connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                name = made.settings_dict["NAME"]
                cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
                assert cursor.fetchone()[0] == 0
        else:
            assert not os.path.exists(made.settings_dict["NAME"])


def test_without_django_db_the_test_has_no_database_access(tenant):
    with pytest.raises(RuntimeError, match="Database access not allowed"):
        Product.objects.using(tenant.alias).count()
"""


def run_user_suite(pytester: pytest.Pytester, env: dict[str, str], isolation: str) -> pytest.RunResult:
    if importlib.util.find_spec("pytest_django") is None:
        pytest.skip("pytest-django is not installed (the nox sessions install it)")
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS.replace("ISOLATION", repr(isolation)))
    for key, value in {
        **env,
        "PYTHONPATH": str(EXAMPLE),
        "DJANGO_SETTINGS_MODULE": "example.settings",
    }.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)


def test_pytest_django_on_sqlite(pytester: pytest.Pytester, tmp_path: Path) -> None:
    env = {"TM_MASTER_SQLITE": str(tmp_path / "master.sqlite3"), "TM_TENANT_DIR": str(tmp_path / "t")}
    result = run_user_suite(pytester, env, "database")
    result.assert_outcomes(passed=3)
    assert not (tmp_path / "master.sqlite3").exists()  # pytest-django's test database, not this


def test_pytest_django_on_postgresql_schemas(pytester: pytest.Pytester, pg_prefix: str) -> None:
    from helpers.pg import drop_databases, pg_env

    env = {**pg_env(pg_prefix), "TM_DB_ENGINE": "postgresql", "TM_PG_NAME": f"{pg_prefix}shared"}
    env["TM_DATABASE_NAME"] = pg_prefix + "{tenant_id}_db"
    try:
        # A schema (the default on PostgreSQL) and a database of its own.
        result = run_user_suite(pytester, env, "database")
        result.assert_outcomes(passed=3)
        # pytest-django dropped its test database: no connection of ours was left open on it.
        assert "Error when trying to teardown test databases" not in result.stdout.str()
    finally:
        drop_databases(f"test_{pg_prefix}")
