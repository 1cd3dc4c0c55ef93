"""Signup, login, logout: server-rendered forms; the session is a JWT cookie pair."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout as django_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from accounts import services, sessions
from accounts.forms import LoginForm, SignupForm


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "home.html")


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or settings.LOGIN_REDIRECT_URL
    # On HTTPS, an http:// target on this host would downgrade the session's next page.
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@ratelimit(key="ip", rate=settings.AUTH_RATELIMIT, method="POST", block=True)
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.create_account(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                actor="signup",
            )
        except services.AccountError:
            form.add_error("email", "An account with this email already exists.")
        else:
            response = redirect(settings.LOGIN_REDIRECT_URL)
            sessions.start_session(response, user)
            return response
    return render(
        request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200
    )


@ratelimit(key="ip", rate=settings.AUTH_RATELIMIT, method="POST", block=True)
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        response = redirect(_safe_next(request))
        sessions.start_session(response, form.user)
        return response
    context = {"form": form, "next": request.GET.get("next", "")}
    return render(request, "accounts/login.html", context, status=400 if form.errors else 200)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    response = redirect("home")
    sessions.end_session(request, response)
    django_logout(request)
    return response


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    response = render(request, "accounts/ratelimited.html", status=429)
    response["Retry-After"] = "60"
    return response
