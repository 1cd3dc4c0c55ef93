from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as accounts_views
from apikeys import views as apikeys_views
from clawwits import views as site_views
from clawwits.api import NotFoundView
from gateway import views as gateway_views
from wits import views_api as wits_api

api = [
    path("v1/chat/completions", gateway_views.ChatCompletionsView.as_view(), name="api-chat"),
    path("v1/messages", gateway_views.MessagesView.as_view(), name="api-messages"),
    path("v1/embeddings", gateway_views.EmbeddingsView.as_view(), name="api-embeddings"),
    path("v1/models", gateway_views.ModelsView.as_view(), name="api-models"),
    path("v1/wits/balance", wits_api.BalanceView.as_view(), name="api-balance"),
    path("v1/wits/transactions", wits_api.TransactionsView.as_view(), name="api-transactions"),
    path("v1/keys", apikeys_views.KeysView.as_view(), name="api-keys-list"),
    path("v1/keys/<uuid:key_id>", apikeys_views.KeyView.as_view(), name="api-key"),
    path(
        "v1/keys/<uuid:key_id>/revoke", apikeys_views.RevokeKeyView.as_view(), name="api-key-revoke"
    ),
    path(
        "v1/keys/<uuid:key_id>/rotate", apikeys_views.RotateKeyView.as_view(), name="api-key-rotate"
    ),
]

pages = [
    path("", accounts_views.home, name="home"),
    path("signup", accounts_views.signup, name="signup"),
    path("login", accounts_views.login, name="login"),
    path("logout", accounts_views.logout, name="logout"),
    path("dashboard", site_views.dashboard, name="dashboard"),
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
    # Last: any other /v1 path answers a JSON 404, never Django's HTML page.
    re_path(r"^v1(?:/.*)?$", NotFoundView.as_view()),
]

handler404 = "clawwits.views.page_not_found"
handler500 = "clawwits.views.server_error"
