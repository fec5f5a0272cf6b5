from decimal import Decimal

from audit.places import current_place
from django.db import migrations


def seed(apps, schema_editor):
    Currency = apps.get_model("billing", "Currency")
    Footprint = apps.get_model("audit", "Footprint")
    Currency.objects.bulk_create(
        [
            Currency(code="USD", name="US dollar", rate=Decimal("1")),
            Currency(code="EUR", name="euro", rate=Decimal("0.9213")),
        ]
    )
    Currency.objects.create(code="JPY", name="Japanese yen", rate=Decimal("151.2500"))
    Footprint.objects.create(kind="orm", place=current_place(), note="seeded currencies")


def unseed(apps, schema_editor):
    Currency = apps.get_model("billing", "Currency")
    Footprint = apps.get_model("audit", "Footprint")
    Currency.objects.filter(code__in=["USD", "EUR", "JPY"]).delete()
    Footprint.objects.filter(kind="orm").delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("audit", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
