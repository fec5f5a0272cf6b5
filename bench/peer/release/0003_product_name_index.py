from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("products", "0002_product_stock")]

    operations = [migrations.AddIndex("product", models.Index(fields=["name"], name="product_name_idx"))]
