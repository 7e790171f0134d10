"""Data migration: the "BudMetrics staff" group (README "Staff access").

Exactly the permissions to manage blocking rules, API clients, project access and saved
queries, plus viewing users: the project-access form picks its user from an autocomplete
that Django only serves to those who may view users. Nothing else (no query audit, no
users or groups to change)."""

from django.db import migrations

STAFF_GROUP = "BudMetrics staff"
MANAGED_MODELS = (
    ("blocking", "blockingrule"),
    ("analytics", "apiclient"),
    ("analytics", "projectaccess"),
    ("analytics", "savedquery"),
)
ACTIONS = ("add", "change", "delete", "view")
EXTRA = (("auth", "view_user"),)


def staff_permissions():
    """(app_label, codename) of every permission the group holds."""
    managed = [(app, f"{action}_{model}") for app, model in MANAGED_MODELS for action in ACTIONS]
    return sorted([*managed, *EXTRA])


def create_staff_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    alias = schema_editor.connection.alias
    # Permissions are normally created after all migrations (post_migrate); make sure the
    # ones named here exist now, on a fresh database too.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)  # unset on state stubs
        app_config.models_module = models_module or True
        create_permissions(app_config, verbosity=0, using=alias, apps=apps)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    wanted = staff_permissions()
    permissions = [
        Permission.objects.using(alias).get(content_type__app_label=app, codename=codename)
        for app, codename in wanted
    ]
    group, _ = Group.objects.using(alias).get_or_create(name=STAFF_GROUP)
    group.permissions.set(permissions)


def remove_staff_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(
        name=STAFF_GROUP
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("blocking", "0002_publication_outbox"),
        ("analytics", "0003_saved_query"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_group, remove_staff_group)]
