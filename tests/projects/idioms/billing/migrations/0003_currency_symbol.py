from audit.places import current_place
from django.db import migrations, models

SYMBOLS = {"USD": "$", "EUR": "€", "JPY": "¥"}


def fill_symbols(apps, schema_editor):
    """Reads the rows 0002 created (in the same database) and completes them."""
    Currency = apps.get_model("billing", "Currency")
    Footprint = apps.get_model("audit", "Footprint")
    seen = []
    for currency in Currency.objects.order_by("code"):
        currency.symbol = SYMBOLS.get(currency.code, "")
        currency.save(update_fields=["symbol"])
        seen.append(currency.code)
    Currency.objects.filter(code="EUR").update(name="Euro")
    Footprint.objects.create(kind="orm", place=current_place(), note="symbols for " + ",".join(seen))


def clear_symbols(apps, schema_editor):
    Currency = apps.get_model("billing", "Currency")
    Footprint = apps.get_model("audit", "Footprint")
    Currency.objects.filter(code="EUR").update(name="euro")
    Currency.objects.update(symbol="")
    Footprint.objects.filter(kind="orm", note__startswith="symbols for ").delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_seed_currencies")]

    operations = [
        migrations.AddField(
            model_name="currency",
            name="symbol",
            field=models.CharField(blank=True, default="", max_length=4),
        ),
        migrations.RunPython(fill_symbols, clear_symbols),
    ]
