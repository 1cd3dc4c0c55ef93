"""Celery tasks of account webhooks: one delivery attempt per run, and the overdue sweep.

With a broker, a failed attempt is retried by Celery after `webhooks.backoff_seconds`, as a
new message naming the next attempt number (a duplicate of it finds the attempt taken and
sends nothing). Eager (no broker, the embedded default) a task makes its one attempt inline
and leaves any retry to `redeliver_webhooks`: an eager retry would run at once, without the
backoff, inside the request that triggered the event.
"""

from __future__ import annotations

from celery import Task, shared_task

from accounts import webhooks


@shared_task(bind=True, name="accounts.tasks.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(self: Task, event_id: str, attempt: int = 1) -> str:
    outcome = webhooks.deliver(event_id=event_id, attempt=attempt)
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(args=(event_id, attempt + 1), countdown=outcome.retry_in, max_retries=None)
    return outcome.state


@shared_task(name="accounts.tasks.redeliver_webhooks", ignore_result=True)
def redeliver_webhooks() -> int:
    """Beat's sweep of webhook events whose next attempt is long overdue."""
    return webhooks.sweep()
