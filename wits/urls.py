"""Pages and webhooks of the wits app (pricing, top-ups); wired at the site root."""

urlpatterns: list = []
