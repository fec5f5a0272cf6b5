from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_groups(apps, schema_editor):
    # Permissions are made by post_migrate, after every migration: create them now, the way
    # countless projects do, to give them to a group in this very migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Team = apps.get_model("staff", "Team")
    Member = apps.get_model("staff", "Member")

    managers, _ = Group.objects.get_or_create(name="Team managers")
    managers.permissions.set(
        Permission.objects.filter(
            content_type__app_label="staff",
            codename__in=["add_member", "change_member", "approve_member", "view_team"],
        )
    )
    viewers, _ = Group.objects.get_or_create(name="Viewers")
    viewers.permissions.add(*Permission.objects.filter(codename__startswith="view_"))

    core = Team.objects.create(name="Core")
    Member.objects.bulk_create([Member(team=core, name="Ada"), Member(team=core, name="Grace")])


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Team = apps.get_model("staff", "Team")
    Group.objects.filter(name__in=["Team managers", "Viewers"]).delete()
    Team.objects.filter(name="Core").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
