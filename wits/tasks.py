from celery import shared_task

from wits import ledger


@shared_task(name="wits.tasks.reconcile")
def reconcile() -> dict:
    """Beat's every-minute sweep of reservations abandoned by crashed processes."""
    result = ledger.reconcile()
    return {"committed": result.committed, "released": result.released, "skipped": result.skipped}
