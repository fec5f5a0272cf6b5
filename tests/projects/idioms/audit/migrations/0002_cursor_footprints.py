from django.db import connection, migrations

from audit.places import current_place


def forwards(apps, schema_editor):
    # Raw SQL through django.db.connection, as many data migrations do.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_footprint (kind, place, note) VALUES (%s, %s, %s)",
            ["cursor", current_place(), "inserted"],
        )
        cursor.execute("SELECT COUNT(*) FROM audit_footprint WHERE kind = %s", ["cursor"])
        (count,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO audit_footprint (kind, place, note) VALUES (%s, %s, %s)",
            ["cursor", current_place(), f"counted {count}"],
        )


def backwards(apps, schema_editor):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_footprint WHERE kind = %s", ["cursor"])


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
