"""Admin for tiers and accounts.

Guarantees:
- An account's per-account limit is validated by `User.clean()`: it is refused unless the
  account's tier allows a custom limit.
- An account created here gets its wallet in the same transaction (no welcome grant: staff
  grant Wits explicitly), so it is as usable as one created by signup.
- The webhook signing secret is never shown (it is not a form field, a column or a filter).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts import services
from accounts.models import Tier, User
from apikeys import keycache
from wits import ledger

TIER_FIELDS = (
    "slug",
    "name",
    "requests_per_minute",
    "price_per_million",
    "custom_limit",
    "sort_order",
)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = TIER_FIELDS
    fields = TIER_FIELDS
    ordering = ("sort_order", "slug")
    search_fields = ("slug", "name")

    # Saving a tier bumps its accounts' cached keys (accounts.signals): the new limit applies on
    # the next request.


class AccountCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "tier", "rate_limit_rpm")


class AccountChangeForm(UserChangeForm):
    webhook_url = forms.URLField(
        label=_("Webhook URL"), max_length=500, required=False, assume_scheme="https"
    )

    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "tier",
            "rate_limit_rpm",
            "low_balance_threshold",
            "webhook_url",
            "is_active",
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
        )


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = AccountChangeForm
    add_form = AccountCreationForm
    list_display = ("email", "tier", "rate_limit_rpm", "is_active", "date_joined")
    list_select_related = ("tier",)
    list_filter = ("tier", "is_active", "is_staff")
    search_fields = ("email",)
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Plan"), {"fields": ("tier", "rate_limit_rpm", "low_balance_threshold")}),
        (_("Webhook"), {"fields": ("webhook_url",)}),
        (
            _("Permissions"),
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "usable_password",
                    "password1",
                    "password2",
                    "tier",
                    "rate_limit_rpm",
                ),
            },
        ),
    )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("tier", services.default_tier().pk)
        return initial

    def save_model(
        self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            # The admin's add view runs in one transaction: user and wallet commit together.
            ledger.open_wallet(user_id=obj.pk)
        # A changed tier, custom limit or active flag bumps the cached keys (accounts.signals).

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        keycache.bump([obj.pk])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        keycache.bump(list(queryset.values_list("pk", flat=True)))
        super().delete_queryset(request, queryset)
