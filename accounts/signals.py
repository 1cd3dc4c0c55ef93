"""Saved limits reach every process's key cache: any save of an account's tier, custom limit or
active flag, or of a tier, bumps the affected accounts' key epochs (apikeys.keycache) once the
transaction commits. The admin bumps too (including bulk deletes, which send no post_save);
a queryset `.update()` sends no signal and must bump itself."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import Tier, User
from apikeys import keycache

_LIMIT_FIELDS = frozenset({"tier", "tier_id", "rate_limit_rpm", "is_active"})


@receiver(post_save, sender=User, dispatch_uid="accounts.bump_user_keys")
def _user_saved(sender: type, instance: User, created: bool, update_fields, **kwargs) -> None:  # noqa: ANN001
    if created:
        return
    # A login saves last_login only: no reason to drop the account's cached keys for that.
    if update_fields is not None and not _LIMIT_FIELDS & set(update_fields):
        return
    keycache.bump([instance.pk])


@receiver(post_save, sender=Tier, dispatch_uid="accounts.bump_tier_keys")
def _tier_saved(sender: type, instance: Tier, created: bool, **kwargs) -> None:  # noqa: ANN001
    if not created:
        keycache.bump(User.objects.filter(tier=instance).values_list("pk", flat=True))
