"""Admin for API keys: inspect, rename, limit, revoke. Never create, never see a plaintext.

Guarantees:
- No add view: keys are created by their owner, the only one who ever sees a plaintext.
- The digest is shown read-only; only `name` and `rate_limit_rpm` can be changed, and saving
  writes only those columns, so a save racing a revocation or a last-use update cannot undo it.
- "Revoke selected keys" goes through `apikeys.services.revoke_key`, like the owner's revoke.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apikeys import keycache, keys, services
from apikeys.models import ApiKey
from apikeys.scopes import Scope

EDITABLE_FIELDS = ("name", "rate_limit_rpm")


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("active", _("active")),
            ("expiring", _("expiring")),
            ("expired", _("expired")),
            ("revoked", _("revoked")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        live = queryset.filter(revoked_at__isnull=True)
        match self.value():
            case "active":
                return live.filter(expires_at__isnull=True)
            case "expiring":
                return live.filter(expires_at__gt=now)
            case "expired":
                return live.filter(expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


class ScopeFilter(admin.SimpleListFilter):
    title = _("scope")
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(scope.value, scope.value) for scope in Scope]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in {scope.value for scope in Scope}:
            return queryset
        # Scopes are stored comma-separated: match whole names only.
        return queryset.filter(scopes__regex=rf"(^|,){value}(,|$)")


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = EDITABLE_FIELDS

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        if not name:
            raise forms.ValidationError(_("A key needs a name."))
        return name

    def clean_rate_limit_rpm(self) -> int | None:
        rpm = self.cleaned_data.get("rate_limit_rpm")
        if rpm is not None and rpm < 1:
            raise forms.ValidationError(_("At least 1, or empty for the account's limit."))
        return rpm


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = (
        "name",
        "user_email",
        "visible_prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "state",
    )
    list_select_related = ("user",)
    list_filter = (StateFilter, ScopeFilter)
    search_fields = ("name", "user__email")
    ordering = ("-created_at",)
    fields = (
        "user",
        "name",
        "visible_prefix",
        "scopes",
        "rate_limit_rpm",
        "state",
        "digest",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
        "rotated_from",
    )
    readonly_fields = tuple(name for name in fields if name not in EDITABLE_FIELDS)
    actions = ["revoke_selected"]

    @admin.display(description=_("user"), ordering="user__email")
    def user_email(self, obj: ApiKey) -> str:
        return obj.user.email

    @admin.display(description=_("key"))
    def visible_prefix(self, obj: ApiKey) -> str:
        return f"{obj.visible_prefix}…"

    @admin.display(description=_("state"))
    def state(self, obj: ApiKey) -> str:
        return obj.state

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A pasted visible prefix (`cw_sk_` + lookup start) finds its key too."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term.startswith(keys.PREFIX) and len(term) > len(keys.PREFIX):
            lookup = term[len(keys.PREFIX) :].rstrip("…")
            results |= queryset.filter(Q(lookup__startswith=lookup))
        return results, may_have_duplicates

    def save_model(
        self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool
    ) -> None:
        changed = [name for name in EDITABLE_FIELDS if name in form.changed_data]
        if changed:
            obj.save(update_fields=changed)
            keycache.bump([obj.user_id])

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        keycache.bump([obj.user_id])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        keycache.bump(list(queryset.values_list("user_id", flat=True)))
        super().delete_queryset(request, queryset)

    @admin.action(description=_("Revoke selected keys"))
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.revoke_key(user_id=key.user_id, key_id=key.pk)
            revoked += 1
        self.message_user(
            request,
            ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", revoked)
            % {"count": revoked},
            messages.SUCCESS,
        )
