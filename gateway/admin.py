from django.contrib import admin

from gateway import catalog
from gateway.models import AiModel, BlockRule, Provider, Route, UsageRecord


class RouteInline(admin.TabularInline):
    model = Route
    extra = 1
    fields = ["position", "provider", "upstream_model"]
    ordering = ["position"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "base_url", "api_key_env", "timeout_s", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "base_url"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog.invalidate()


@admin.register(AiModel)
class AiModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "input_price",
        "output_price",
        "cache_read_price",
        "max_output_tokens",
        "auto_rank",
        "enabled",
    ]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "description"]
    inlines = [RouteInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        catalog.invalidate()


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "user",
        "endpoint",
        "model",
        "provider",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "wits",
        "cached",
        "settle_reason",
        "screening",
    ]
    list_filter = ["endpoint", "status", "cached", "stream", "settle_reason"]
    search_fields = ["request_id", "user__email", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BlockRule)
class BlockRuleAdmin(admin.ModelAdmin):
    list_display = ["pattern", "is_regex", "enabled", "note", "updated_at"]
    list_filter = ["is_regex", "enabled"]
    search_fields = ["pattern", "note"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog.invalidate()
