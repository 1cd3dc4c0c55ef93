from django.contrib import admin
from django.urls import include, path, re_path

from accounts import pages as accounts_pages
from accounts import views as accounts_views
from accounts import views_api as accounts_api
from apikeys import views as apikeys_views
from clawwits import views as site_views
from clawwits.api import NotFoundView
from gateway import openapi as gateway_openapi
from gateway import views as gateway_views
from gateway import views_usage as usage_api
from wits import views_api as wits_api

api = [
    path("v1/chat/completions", gateway_views.ChatCompletionsView.as_view(), name="api-chat"),
    path("v1/messages", gateway_views.MessagesView.as_view(), name="api-messages"),
    path("v1/embeddings", gateway_views.EmbeddingsView.as_view(), name="api-embeddings"),
    path("v1/models", gateway_views.ModelsView.as_view(), name="api-models"),
    path("v1/wits/balance", wits_api.BalanceView.as_view(), name="api-balance"),
    path("v1/wits/transactions", wits_api.TransactionsView.as_view(), name="api-transactions"),
    path("v1/usage", usage_api.UsageView.as_view(), name="api-usage"),
    path("v1/usage/summary", usage_api.UsageSummaryView.as_view(), name="api-usage-summary"),
    path("v1/keys", apikeys_views.KeysView.as_view(), name="api-keys-list"),
    path("v1/keys/<uuid:key_id>", apikeys_views.KeyView.as_view(), name="api-key"),
    path(
        "v1/keys/<uuid:key_id>/revoke", apikeys_views.RevokeKeyView.as_view(), name="api-key-revoke"
    ),
    path(
        "v1/keys/<uuid:key_id>/rotate", apikeys_views.RotateKeyView.as_view(), name="api-key-rotate"
    ),
    path("v1/webhooks", accounts_api.WebhooksView.as_view(), name="api-webhooks"),
    path("v1/webhooks/test", accounts_api.WebhookTestView.as_view(), name="api-webhooks-test"),
    path(
        "v1/webhooks/events/<str:event_id>",
        accounts_api.WebhookEventView.as_view(),
        name="api-webhook-event",
    ),
]

pages = [
    path("", accounts_views.home, name="home"),
    path("signup", accounts_views.signup, name="signup"),
    path("login", accounts_views.login, name="login"),
    path("logout", accounts_views.logout, name="logout"),
    path("dashboard", site_views.dashboard, name="dashboard"),
    path("usage", site_views.usage_page, name="usage"),
    path("usage.csv", site_views.usage_csv, name="usage-csv"),
    path("billing", site_views.billing_page, name="billing"),
    path("playground", site_views.playground, name="playground"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("settings", accounts_pages.settings_page, name="settings"),
    path("settings/password", accounts_pages.change_password, name="settings-password"),
    path("settings/low-balance", accounts_pages.low_balance, name="settings-low-balance"),
    path("settings/webhook", accounts_pages.webhook_url, name="settings-webhook"),
    path(
        "settings/webhook/secret", accounts_pages.regenerate_secret, name="settings-webhook-secret"
    ),
    path("settings/webhook/test", accounts_pages.send_test, name="settings-webhook-test"),
    path("api-keys", apikeys_views.keys_page, name="api-keys"),
    path("api-keys/<uuid:key_id>/revoke", apikeys_views.revoke_page, name="api-key-revoke-page"),
    path("api-keys/<uuid:key_id>/rename", apikeys_views.rename_page, name="api-key-rename-page"),
    path("api-keys/<uuid:key_id>/rotate", apikeys_views.rotate_page, name="api-key-rotate-page"),
    path("healthz", site_views.healthz, name="healthz"),
    path("readyz", site_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("wits.urls")),
]

urlpatterns = [
    *api,
    *pages,
    path("v1/openapi.json", gateway_openapi.OpenApiView.as_view(), name="api-openapi"),
    # Last: any other /v1 path answers a JSON 404, never Django's HTML page.
    re_path(r"^v1(?:/.*)?$", NotFoundView.as_view()),
]

handler400 = "clawwits.views.bad_request"
handler404 = "clawwits.views.page_not_found"
handler500 = "clawwits.views.server_error"
