from django.db import migrations


def add_report_permission(apps, schema_editor):
    # A permission with no model behind it: its own content type, made by hand.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="staff", model="report")
    permission, _ = Permission.objects.get_or_create(
        codename="view_report", content_type=content_type, defaults={"name": "Can view reports"}
    )
    Group.objects.get(name="Team managers").permissions.add(permission)


def remove_report_permission(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="staff", model="report").delete()


class Migration(migrations.Migration):
    dependencies = [("staff", "0002_groups_and_permissions")]

    operations = [migrations.RunPython(add_report_permission, remove_report_permission)]
