from django.apps import AppConfig


class WitsConfig(AppConfig):
    name = "wits"
    default_auto_field = "django.db.models.BigAutoField"
