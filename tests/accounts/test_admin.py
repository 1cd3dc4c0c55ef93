"""Django admin: tiers, accounts (tier, custom limit, creation) and API keys (read-only secrets)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Tier, User
from apikeys import keys
from apikeys.models import ApiKey
from wits import ledger
from wits.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user) -> Client:
    client = Client()
    client.force_login(make_user("staff@example.com", staff=True))
    return client


def _tier(slug: str) -> Tier:
    return Tier.objects.get(slug=slug)


def _change_data(user: User, **overrides: object) -> dict:
    data = {
        "email": user.email,
        "tier": user.tier_id,
        "rate_limit_rpm": "" if user.rate_limit_rpm is None else user.rate_limit_rpm,
        "low_balance_threshold": user.low_balance_threshold,
        "webhook_url": user.webhook_url,
        "is_active": "on" if user.is_active else "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


def _row(user: User) -> dict:
    return User.objects.filter(pk=user.pk).values().get()


def test_admin_needs_a_staff_account(make_user):
    client = Client()
    client.force_login(make_user("customer@example.com"))

    response = client.get("/admin/accounts/user/")

    assert (response.status_code, response["Location"]) == (
        302,
        "/admin/login/?next=/admin/accounts/user/",
    )


def test_user_list_shows_email_tier_limit_state_and_search(make_user, staff):
    make_user("alice@example.com", tier="pro")
    make_user("bob@example.com")

    listing = staff.get("/admin/accounts/user/")
    found = staff.get("/admin/accounts/user/?q=alice")
    by_tier = staff.get(f"/admin/accounts/user/?tier__id__exact={_tier('pro').pk}")

    assert listing.status_code == 200
    assert [u.email for u in listing.context["cl"].result_list] == [
        "alice@example.com",
        "bob@example.com",
        "staff@example.com",
    ]
    assert listing.context["cl"].list_display == [
        "action_checkbox",
        "email",
        "tier",
        "rate_limit_rpm",
        "is_active",
        "date_joined",
    ]
    assert [u.email for u in found.context["cl"].result_list] == ["alice@example.com"]
    assert [u.email for u in by_tier.context["cl"].result_list] == ["alice@example.com"]


def test_staff_changes_an_accounts_tier_and_its_limit_follows(make_user, staff):
    # Given: a free-trial account
    user = make_user("alice@example.com")
    assert user.requests_per_minute == 30

    # When: staff moves it to Pro in the admin
    response = staff.post(
        f"/admin/accounts/user/{user.pk}/change/", _change_data(user, tier=_tier("pro").pk)
    )

    # Then
    assert (response.status_code, response["Location"]) == (302, "/admin/accounts/user/")
    user = User.objects.get(pk=user.pk)
    assert (user.tier.slug, user.requests_per_minute) == ("pro", 5_000)


def test_custom_limit_is_accepted_on_a_custom_limit_tier(make_user, staff):
    user = make_user("big@example.com")

    response = staff.post(
        f"/admin/accounts/user/{user.pk}/change/",
        _change_data(user, tier=_tier("enterprise").pk, rate_limit_rpm=77_777),
    )

    assert response.status_code == 302
    user = User.objects.get(pk=user.pk)
    assert (user.tier.slug, user.rate_limit_rpm, user.requests_per_minute) == (
        "enterprise",
        77_777,
        77_777,
    )


def test_custom_limit_is_refused_on_a_tier_without_custom_limits(make_user, staff):
    user = make_user("alice@example.com")
    before = _row(user)

    response = staff.post(
        f"/admin/accounts/user/{user.pk}/change/",
        _change_data(user, tier=_tier("pro").pk, rate_limit_rpm=77_777),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "rate_limit_rpm": ["Only tiers with a custom limit take a per-account limit."]
    }
    assert _row(user) == before


def test_user_admin_never_shows_the_webhook_secret(make_user, staff):
    user = make_user("hooks@example.com")
    User.objects.filter(pk=user.pk).update(
        webhook_url="https://hooks.example.com/cw", webhook_secret="whsec_0123456789abcdefSECRET"
    )

    pages = [
        staff.get("/admin/accounts/user/"),
        staff.get(f"/admin/accounts/user/{user.pk}/change/"),
        staff.get("/admin/accounts/user/?q=whsec"),
    ]

    assert [p.status_code for p in pages] == [200, 200, 200]
    assert ["0123456789abcdefSECRET" in p.content.decode() for p in pages] == [False] * 3
    assert "webhook_secret" not in pages[1].context["adminform"].form.fields
    assert [u.email for u in pages[2].context["cl"].result_list] == []


def test_saving_an_account_keeps_its_webhook_secret(make_user, staff):
    user = make_user("hooks@example.com")
    User.objects.filter(pk=user.pk).update(webhook_secret="whsec_keep")

    staff.post(f"/admin/accounts/user/{user.pk}/change/", _change_data(user, tier=_tier("plus").pk))

    assert User.objects.get(pk=user.pk).webhook_secret == "whsec_keep"


def test_staff_creates_an_account_with_a_password_and_a_wallet(staff):
    response = staff.post(
        "/admin/accounts/user/add/",
        {
            "email": "Created@Example.com",
            "usable_password": "true",
            "password1": "a-long-pass-phrase-7",
            "password2": "a-long-pass-phrase-7",
            "tier": _tier("starter").pk,
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="created@example.com")
    assert user.check_password("a-long-pass-phrase-7")
    assert (user.tier.slug, user.rate_limit_rpm, user.is_staff) == ("starter", None, False)
    assert ledger.balance(user_id=user.id) == ledger.Balance(0, 0, 0)
    assert Wallet.objects.filter(user_id=user.id).count() == 1
    assert ledger.check() == []


def test_add_form_defaults_to_the_default_tier(staff):
    response = staff.get("/admin/accounts/user/add/")

    assert response.status_code == 200
    assert response.context["adminform"].form.initial["tier"] == _tier("free_trial").pk


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "taken@example.com"}, "email"),
        ({"email": "TAKEN@example.com"}, "email"),
        ({"password2": "different-pass-phrase-7"}, "password2"),
        ({"rate_limit_rpm": 10}, "rate_limit_rpm"),
    ],
)
def test_bad_account_creation_in_admin_creates_nothing(make_user, staff, data, field):
    make_user("taken@example.com")
    before = User.objects.count()
    post = {
        "email": "new@example.com",
        "usable_password": "true",
        "password1": "a-long-pass-phrase-7",
        "password2": "a-long-pass-phrase-7",
        "tier": _tier("starter").pk,
        **data,
    }

    response = staff.post("/admin/accounts/user/add/", post)

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    assert User.objects.count() == before


def test_tier_admin_lists_and_edits_tiers(make_user, staff):
    user = make_user("alice@example.com", tier="starter")
    starter = _tier("starter")

    listing = staff.get("/admin/accounts/tier/")
    response = staff.post(
        f"/admin/accounts/tier/{starter.pk}/change/",
        {
            "slug": "starter",
            "name": "Starter",
            "requests_per_minute": 450,
            "price_per_million": 54_000,
            "sort_order": 1,
        },
    )

    assert [t.slug for t in listing.context["cl"].result_list][:3] == [
        "free_trial",
        "starter",
        "plus",
    ]
    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).requests_per_minute == 450
    assert (Tier.objects.get(slug="starter").price_per_million) == 54_000


# --- API keys -------------------------------------------------------------------------------


def _key(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(lookup=keys.parse(plaintext).lookup)


def test_key_list_shows_owner_prefix_scopes_and_state(make_user, make_api_key, staff):
    plaintext = make_api_key(make_user("owner@example.com"), "ai,data", name="ci")
    key = _key(plaintext)

    response = staff.get("/admin/apikeys/apikey/")

    body = response.content.decode()
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [key]
    for text in ("owner@example.com", f"{key.visible_prefix}…", "ai,data", "active", "ci"):
        assert text in body
    assert plaintext not in body


def test_key_admin_shows_the_digest_read_only(make_user, make_api_key, staff):
    plaintext = make_api_key(make_user("owner@example.com"), "ai")
    key = _key(plaintext)

    response = staff.get(f"/admin/apikeys/apikey/{key.pk}/change/")

    body = response.content.decode()
    form = response.context["adminform"].form
    assert response.status_code == 200
    assert key.digest in body
    assert sorted(form.fields) == ["name", "rate_limit_rpm"]
    assert 'name="digest"' not in body
    assert 'name="scopes"' not in body
    assert plaintext not in body


def test_key_admin_changes_only_name_and_limit(make_user, make_api_key, staff):
    key = _key(make_api_key(make_user("owner@example.com"), "ai"))
    before = ApiKey.objects.filter(pk=key.pk).values().get()

    response = staff.post(
        f"/admin/apikeys/apikey/{key.pk}/change/",
        {
            "name": "renamed",
            "rate_limit_rpm": 5,
            "digest": "0" * 64,
            "scopes": "full",
            "revoked_at": "",
            "lookup": "AAAAAAAAAAAA",
        },
    )

    assert response.status_code == 302
    after = ApiKey.objects.filter(pk=key.pk).values().get()
    assert {k: v for k, v in after.items() if before[k] != v} == {
        "name": "renamed",
        "rate_limit_rpm": 5,
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [({"name": " "}, "name"), ({"name": "x", "rate_limit_rpm": 0}, "rate_limit_rpm")],
)
def test_key_admin_refuses_bad_values(make_user, make_api_key, staff, data, field):
    key = _key(make_api_key(make_user("owner@example.com"), "ai"))
    before = ApiKey.objects.filter(pk=key.pk).values().get()

    response = staff.post(f"/admin/apikeys/apikey/{key.pk}/change/", data)

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    assert ApiKey.objects.filter(pk=key.pk).values().get() == before


def test_saving_a_key_in_admin_cannot_undo_a_revocation(
    make_user, make_api_key, staff, monkeypatch
):
    # Given: the owner revokes the key while staff's save is in flight
    from apikeys import admin as apikeys_admin
    from apikeys import services

    owner = make_user("owner@example.com")
    key = _key(make_api_key(owner, "ai"))
    original = apikeys_admin.ApiKeyAdmin.save_model

    def save_after_revocation(self, request, obj, form, change):
        services.revoke_key(user_id=owner.id, key_id=obj.pk)
        original(self, request, obj, form, change)

    monkeypatch.setattr(apikeys_admin.ApiKeyAdmin, "save_model", save_after_revocation)

    # When
    staff.post(f"/admin/apikeys/apikey/{key.pk}/change/", {"name": "renamed"})

    # Then: the rename landed and the revocation stands
    key.refresh_from_db()
    assert (key.name, key.state) == ("renamed", "revoked")


def test_key_admin_has_no_add(staff):
    response = staff.get("/admin/apikeys/apikey/add/")
    listing = staff.get("/admin/apikeys/apikey/")

    assert response.status_code == 403
    assert listing.context["has_add_permission"] is False


def test_revoke_action_revokes_selected_keys_through_the_service(
    make_user, make_api_key, staff, api_client
):
    # Given: three keys, one already revoked, one not selected
    from apikeys import services

    owner = make_user("owner@example.com", wits=10)
    first, second, kept = (make_api_key(owner, "ai", name=n) for n in ("a", "b", "c"))
    services.revoke_key(user_id=owner.id, key_id=_key(second).pk)
    first_revocation = _key(second).revoked_at

    # When
    response = staff.post(
        "/admin/apikeys/apikey/",
        {
            "action": "revoke_selected",
            "_selected_action": [str(_key(first).pk), str(_key(second).pk)],
        },
        follow=True,
    )

    # Then
    assert [str(m) for m in response.context["messages"]] == ["Revoked 1 key."]
    assert [_key(p).state for p in (first, second, kept)] == ["revoked", "revoked", "active"]
    assert _key(second).revoked_at == first_revocation
    assert api_client.get("/v1/wits/balance", HTTP_X_API_KEY=first).status_code == 401
    assert api_client.get("/v1/wits/balance", HTTP_X_API_KEY=kept).status_code == 200


def test_key_admin_filters_by_state_and_scope(make_user, make_api_key, staff):
    from apikeys import services

    owner = make_user("owner@example.com")
    active = _key(make_api_key(owner, "ai", name="active"))
    revoked = _key(make_api_key(owner, "automation,data", name="revoked"))
    services.revoke_key(user_id=owner.id, key_id=revoked.pk)
    rotated = _key(make_api_key(owner, "data", name="rotated"))
    successor = services.rotate_key(user_id=owner.id, key_id=rotated.pk, grace_seconds=3600).key

    def names(query: str) -> list[str]:
        response = staff.get(f"/admin/apikeys/apikey/?{query}")
        return sorted(k.name for k in response.context["cl"].result_list)

    assert names("state=active") == sorted([active.name, successor.name])
    assert names("state=revoked") == ["revoked"]
    assert names("state=expiring") == ["rotated"]
    assert names("state=expired") == []
    assert names("scope=data") == ["revoked", "rotated", "rotated"]
    assert names("scope=ai") == ["active"]
    assert names("scope=automation") == ["revoked"]
    assert names("scope=full") == []


def test_key_admin_search_by_email_name_and_visible_prefix(make_user, make_api_key, staff):
    mine = _key(make_api_key(make_user("alice@example.com"), "ai", name="laptop"))
    _key(make_api_key(make_user("bob@example.com"), "ai", name="server"))

    def found(term: str) -> list[str]:
        response = staff.get("/admin/apikeys/apikey/", {"q": term})
        return [k.name for k in response.context["cl"].result_list]

    assert found("alice") == ["laptop"]
    assert found("laptop") == ["laptop"]
    assert found(mine.visible_prefix) == ["laptop"]
    assert found(f"{mine.visible_prefix}…") == ["laptop"]


def test_staff_sets_a_new_password_through_the_admin_form(make_user, staff):
    user = make_user("forgetful@example.com")

    response = staff.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "brand-new-phrase-42", "password2": "brand-new-phrase-42"},
    )

    assert response.status_code == 302
    user = User.objects.get(pk=user.pk)
    assert (user.check_password("brand-new-phrase-42"), user.check_password("correct-horse-9")) == (
        True,
        False,
    )
