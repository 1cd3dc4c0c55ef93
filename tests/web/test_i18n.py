"""English and Vietnamese: chosen from Accept-Language or the header's switcher (a CSRF-protected
POST to /i18n/setlang/), numbers and money formatted for the language, and a catalogue that
translates every marked string of the templates and the code."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils.translation.template import templatize

from wits import topups

ROOT = Path(settings.BASE_DIR)
PO = ROOT / "locale" / "vi" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
CODE_DIRS = ("accounts", "apikeys", "clawwits", "gateway", "wits")
GETTEXT_NAMES = {
    "_",
    "gettext",
    "gettext_lazy",
    "gettext_noop",
    "ngettext",
    "ngettext_lazy",
    "pgettext",
    "pgettext_lazy",
    "npgettext",
    "npgettext_lazy",
}


def _client(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


# --- pages in Vietnamese ---------------------------------------------------------------------


@pytest.mark.django_db
def test_accept_language_vi_renders_the_dashboard_in_vietnamese(make_user):
    user = make_user(tier="starter", wits=1_234_567)

    response = _client(user, HTTP_ACCEPT_LANGUAGE="vi").get("/dashboard")

    body = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="vi">' in body
    assert "<h1>Bảng điều khiển</h1>" in body
    assert '<strong id="available">1.234.567</strong>' in body
    assert '<small id="rpm">300 yêu cầu mỗi phút</small>' in body
    assert "Gửi yêu cầu đầu tiên" in body
    assert response["Content-Language"] == "vi"


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["en", "en-US,en;q=0.9", "fr-FR", ""])
def test_other_languages_get_english(make_user, header):
    user = make_user(wits=1_234_567)

    body = _client(user, HTTP_ACCEPT_LANGUAGE=header).get("/dashboard").content.decode()

    assert '<html lang="en">' in body
    assert "<h1>Dashboard</h1>" in body
    assert '<strong id="available">1,234,567</strong>' in body


@pytest.mark.django_db
def test_vietnamese_money_and_numbers_on_the_billing_page(make_user):
    # Given a free-trial account (60,000 VND per 1M Wits) with a pending order for 2M Wits
    user = make_user(wits=1_234)
    topups.start_order(user=user, wits=2_000_000, method="bank")

    # When
    body = _client(user, HTTP_ACCEPT_LANGUAGE="vi").get("/billing").content.decode()

    # Then
    assert "<h1>Thanh toán</h1>" in body
    assert '<td class="num price">120.000 ₫</td>' in body
    assert '<td class="num">2.000.000</td>' in body
    assert '<strong id="available">1.234</strong>' in body
    assert re.search(r'<td class="state state-pending">Đang chờ thanh toán\s*</td>', body)
    assert "<td>Chuyển khoản ngân hàng</td>" in body


@pytest.mark.django_db
def test_vietnamese_usage_page_and_chart(make_user):
    from gateway.models import UsageRecord

    user = make_user(wits=10)
    UsageRecord.objects.create(
        user_id=user.id,
        request_id="req_vi",
        endpoint="chat",
        model="gpt-fake",
        prompt_tokens=1500,
        completion_tokens=2,
        wits=12_345,
        latency_ms=2500,
        status=200,
        settle_reason="completed",
    )
    client = _client(user, HTTP_ACCEPT_LANGUAGE="vi")

    usage = client.get("/usage").content.decode()
    dashboard = client.get("/dashboard").content.decode()

    assert "<h1>Mức sử dụng</h1>" in usage
    assert '<td class="num prompt">1.500</td>' in usage
    assert '<td class="num wits">12.345</td>' in usage
    assert "2.500 ms" in usage
    assert "hoàn tất" in usage
    assert "Wits đã dùng (cột) và số yêu cầu (đường) mỗi ngày" in dashboard
    assert ": 12.345 Wits, 1 yêu cầu</title>" in dashboard


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/login", "/signup", "/pricing"])
def test_public_pages_render_in_vietnamese(path):
    body = Client(HTTP_ACCEPT_LANGUAGE="vi").get(path).content.decode()

    assert '<html lang="vi">' in body
    assert "Đăng nhập" in body


# --- the switcher ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_header_has_a_switcher_posting_to_setlang_with_csrf(make_user):
    body = _client(make_user()).get("/usage?model=x").content.decode()

    form = body[body.index('<form method="post" action="/i18n/setlang/"') : body.index("</form>")]
    assert 'name="csrfmiddlewaretoken"' in form
    assert 'name="next"' not in form
    assert re.search(r'value="en"[^>]*aria-pressed="true" disabled>English</button>', form)
    assert re.search(r'value="vi" class="link" lang="vi">Tiếng Việt</button>', form)


@pytest.mark.django_db
def test_switching_to_vietnamese_sticks_for_the_following_pages(make_user):
    # Given a browser asking for English
    client = _client(make_user(wits=5_000), HTTP_ACCEPT_LANGUAGE="en")

    # When it switches to Vietnamese in the header
    switched = client.post("/i18n/setlang/", {"language": "vi", "next": "/usage"})

    # Then it goes back where it was and every page is Vietnamese from then on
    assert (switched.status_code, switched["Location"]) == (302, "/usage")
    cookie = switched.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert (cookie.value, cookie["samesite"], cookie["httponly"]) == ("vi", "Lax", True)
    assert "<h1>Mức sử dụng</h1>" in client.get("/usage").content.decode()
    dashboard = client.get("/dashboard").content.decode()
    assert '<strong id="available">5.000</strong>' in dashboard
    assert re.search(r'value="vi"[^>]*aria-pressed="true" disabled>Tiếng Việt</button>', dashboard)

    # And switching back returns to English
    client.post("/i18n/setlang/", {"language": "en", "next": "/dashboard"})
    assert "<h1>Dashboard</h1>" in client.get("/dashboard").content.decode()


@pytest.mark.django_db
def test_the_switcher_returns_to_the_page_it_was_used_on(make_user):
    client = _client(make_user())

    response = client.post(
        "/i18n/setlang/", {"language": "vi"}, HTTP_REFERER="http://testserver/usage?model=x"
    )

    assert (response.status_code, response["Location"]) == (302, "http://testserver/usage?model=x")


@pytest.mark.django_db
def test_the_switcher_never_returns_to_another_site(make_user):
    client = _client(make_user())

    response = client.post(
        "/i18n/setlang/", {"language": "vi"}, HTTP_REFERER="https://evil.example.com/page"
    )

    assert (response.status_code, response["Location"]) == (302, "/")


@pytest.mark.django_db
def test_the_switcher_refuses_a_post_without_a_csrf_token(make_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user())

    response = client.post("/i18n/setlang/", {"language": "vi", "next": "/dashboard"})

    assert response.status_code == 403
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


@pytest.mark.django_db
def test_the_switcher_works_with_the_pages_csrf_token(make_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user())
    page = client.get("/dashboard").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    response = client.post(
        "/i18n/setlang/", {"language": "vi", "next": "/dashboard", "csrfmiddlewaretoken": token}
    )

    assert (response.status_code, response["Location"]) == (302, "/dashboard")
    assert "<h1>Bảng điều khiển</h1>" in client.get("/dashboard").content.decode()


@pytest.mark.django_db
def test_the_switcher_never_redirects_off_site(make_user):
    client = _client(make_user())

    response = client.post(
        "/i18n/setlang/", {"language": "vi", "next": "https://evil.example.com/"}
    )

    assert (response.status_code, response["Location"]) == (302, "/")


@pytest.mark.django_db
def test_an_unknown_language_changes_nothing(make_user):
    client = _client(make_user())

    response = client.post("/i18n/setlang/", {"language": "xx", "next": "/dashboard"})

    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert "<h1>Dashboard</h1>" in client.get("/dashboard").content.decode()


# --- the catalogue ---------------------------------------------------------------------------


def _po_entries() -> dict[str, str]:
    """msgid (with "context\\x04" before it when it has one) -> msgstr (msgstr[0] for plurals)."""
    entries: dict[str, str] = {}
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        fields: dict[str, str] = {}
        name = ""
        for line in lines:
            match = re.match(
                r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[0\])?|msgstr\[\d+\]) (".*")$', line
            )
            if match:
                name = match.group(1)
                fields[name] = ast.literal_eval(match.group(2))
            else:
                fields[name] += ast.literal_eval(line)
        if not fields.get("msgid"):
            continue
        key = fields["msgid"]
        if "msgctxt" in fields:
            key = f"{fields['msgctxt']}\x04{key}"
        entries[key] = fields.get("msgstr", fields.get("msgstr[0]", ""))
    return entries


def _marked_in_templates() -> set[str]:
    literal = r"u'(?:[^'\\]|\\.)*'"
    call = re.compile(rf"\b(n?p?gettext)\(((?:{literal}(?:, )?)+)(?:count)?\)")
    found = set()
    for path in (ROOT / "templates").rglob("*.html"):
        code = templatize(path.read_text(encoding="utf-8"), origin=str(path))
        for name, args in call.findall(code):
            strings = [ast.literal_eval(s) for s in re.findall(literal, args)]
            found.add(
                f"{strings[0]}\x04{strings[1]}"
                if name.startswith(("pgettext", "npg"))
                else strings[0]
            )
    return found


def _marked_in_code() -> set[str]:
    found = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name not in GETTEXT_NAMES:
                    continue
                strings = [a.value for a in node.args if isinstance(a, ast.Constant)]
                if not strings or not all(isinstance(s, str) for s in strings):
                    continue
                found.add(
                    f"{strings[0]}\x04{strings[1]}"
                    if name.startswith(("pg", "npg"))
                    else strings[0]
                )
    return found


def test_the_catalogue_translates_every_entry():
    text = PO.read_text(encoding="utf-8")
    entries = _po_entries()

    assert len(entries) > 200
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []
    assert "#, fuzzy" not in text
    assert '"Language: vi\\n"' in text
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in text


def test_the_compiled_catalogue_matches_the_po_file():
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog
    singular = {
        (key if isinstance(key, str) else key[0]): value
        for key, value in compiled.items()
        if isinstance(key, str) or key[1] == 0
    }
    singular.pop("", None)

    assert singular == _po_entries()


def test_every_marked_string_of_templates_and_code_has_a_translation():
    catalogue = _po_entries()

    missing = sorted((_marked_in_templates() | _marked_in_code()) - set(catalogue))

    assert missing == [], "run makemessages -l vi, translate, and compile the .mo"


def test_the_extraction_finds_strings_it_must_find():
    marked = _marked_in_templates() | _marked_in_code()

    assert {
        "Dashboard",
        "Log out",
        "%(rpm)s requests per minute",
        "chart axis day, a PHP-style date format\x04M j",
        "Bank transfer",
        "Not found.",
    } <= marked
