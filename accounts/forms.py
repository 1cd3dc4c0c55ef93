from django import forms
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth import forms as auth_forms
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User


class SignupForm(forms.Form):
    email = forms.EmailField(label=_("Email"), max_length=254)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label=_("Password again"), widget=forms.PasswordInput, strip=False)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError(_("An account with this email already exists."))
        return email

    def clean(self) -> dict:
        data = super().clean()
        password, again = data.get("password"), data.get("password2")
        if password and again and password != again:
            self.add_error("password2", _("The two passwords differ."))
        if password and data.get("email"):
            try:
                password_validation.validate_password(password, User(email=data["email"]))
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class LoginForm(forms.Form):
    email = forms.EmailField(label=_("Email"), max_length=254)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, strip=False)

    def __init__(self, *args: object, request: object = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user: User | None = None

    def clean(self) -> dict:
        data = super().clean()
        email, password = data.get("email"), data.get("password")
        if email and password:
            self.user = authenticate(self.request, username=email.lower(), password=password)
            if self.user is None or not self.user.is_active:
                raise forms.ValidationError(_("Wrong email or password."))
        return data


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    """Old password, the new one twice, Django's validators; saving signs out other browsers.

    `save` sets the password and blacklists every refresh token the account holds, so no other
    session can mint a new access token (those already issued expire within JWT_ACCESS_TTL_S).
    The view issues this browser a new pair.
    """

    def save(self, commit: bool = True) -> User:
        user = self.user
        user.set_password(self.cleaned_data["new_password1"])
        with transaction.atomic():
            user.save(update_fields=["password"])
            outstanding = OutstandingToken.objects.filter(
                user_id=user.pk, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
            )
            BlacklistedToken.objects.bulk_create(
                [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
            )
        return user


class LowBalanceForm(forms.Form):
    low_balance_threshold = forms.IntegerField(
        label=_("Warn me below (Wits)"), min_value=0, max_value=2**63 - 1
    )


class WebhookUrlForm(forms.Form):
    url = forms.CharField(
        label=_("Webhook URL"),
        max_length=500,
        required=False,
        help_text=_("https://... on a public host; leave empty to turn webhooks off."),
    )
