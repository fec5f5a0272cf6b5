from django.db import migrations

# The floor in bench/peer_bench.py replays this UPDATE as SQL: keep the two in step.
FILL = 100


def fill_stock(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    Product.objects.using(schema_editor.connection.alias).filter(stock=0).update(stock=FILL)


class Migration(migrations.Migration):
    dependencies = [("products", "0003_product_name_index")]

    operations = [migrations.RunPython(fill_stock, migrations.RunPython.noop)]
