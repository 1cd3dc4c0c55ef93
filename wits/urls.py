"""Pages and webhooks of the wits app (pricing, top-ups); wired at the site root."""

from django.urls import path

from wits import views

urlpatterns = [
    path("pricing", views.pricing_page, name="pricing"),
    path("topups", views.topups_page, name="topups"),
    path("topups/<uuid:order_id>", views.order_page, name="topup-order"),
    path("webhooks/stripe", views.stripe_webhook, name="stripe-webhook"),
]
