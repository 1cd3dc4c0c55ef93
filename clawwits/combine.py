"""Combining concurrent calls that touch the same row into one batch (group commit).

Guarantees:
- Every submitted job is run exactly once, in exactly one batch, and its caller gets back
  that job's own result or exception.
- Batches of one key never overlap in time: a job that arrives while a batch of its key runs
  waits and goes into the next one, so at most one caller per key holds the row's lock at a
  time within a process (the others would only queue on it in the database).
- A batch runs on the thread (or greenlet) of one of its own members, so it uses that
  member's database connection; a caller never waits for a batch it is not in except the one
  running when it arrived. A job that finds nothing running for its key runs at once, alone:
  without concurrency nothing is delayed.
- Pure: no Django, no database. The caller says how a batch runs (`run`: jobs -> one outcome
  per job, in order) and how one job runs alone (`alone`), which is used when a batch of more
  than one fails as a whole: each member then runs alone, on its own thread, so an error
  that belongs to one member is raised to that member only, and nothing written by the failed
  batch survives (the batch is one statement; it rolled back whole).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class _Alone:
    def __repr__(self) -> str:
        return "ALONE"


# An outcome of `run` for a job the batch left undone: that job then runs `alone`, on its
# caller's thread, after the batch (e.g. a reserve the batch could not cover, which must be
# tried again on its own before it is refused).
ALONE = _Alone()


@dataclass(eq=False)
class _Slot(Generic[J, R]):
    job: J
    # Made only for a job that queues: one that finds its key free never waits (and an Event,
    # a Condition and its lock, was ~1% of a billed call's CPU).
    done: threading.Event | None = None
    # Set when the slot is woken: the batch it leads, or its result, or an error to raise,
    # or neither (run alone).
    batch: list[_Slot[J, R]] | None = None
    result: R | None = None
    error: BaseException | None = None
    finished: bool = False


class Combiner(Generic[J, R]):
    """Flat combining: per key, one batch at a time; jobs that arrive meanwhile form the next.

    `run(jobs)` returns one outcome per job, in order: a result, an exception instance that
    belongs to that job alone (raised to its caller), or `ALONE`. An exception raised by `run`
    itself fails the whole batch: with more than one job, each then runs `alone`.
    """

    def __init__(
        self,
        run: Callable[[Sequence[J]], Sequence[R | BaseException | _Alone]],
        alone: Callable[[J], R],
        *,
        max_batch: int,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._alone = alone
        self._max = max_batch
        self._lock = threading.Lock()
        # A key is present while a batch of it runs; its list holds the jobs waiting for the
        # next batch.
        self._waiting: dict[Hashable, list[_Slot[J, R]]] = {}

    @property
    def max_batch(self) -> int:
        return self._max

    def submit(self, key: Hashable, job: J) -> R:
        slot: _Slot[J, R] = _Slot(job)
        with self._lock:
            queue = self._waiting.get(key)
            if queue is None:
                self._waiting[key] = []
                slot.batch = [slot]
            else:
                slot.done = threading.Event()
                queue.append(slot)
        if slot.done is not None:
            try:
                slot.done.wait()
            except BaseException:
                # Interrupted while queued (a timeout, a killed greenlet): leave the queue, or,
                # once taken into a batch, let it go on without this caller, and lead it if
                # this caller was made its leader (its members wait for that).
                with self._lock:
                    queue = self._waiting.get(key)
                    if queue is not None and slot in queue:
                        queue.remove(slot)
                        raise
                    batch = slot.batch
                if batch is not None:
                    self._lead(key, batch)
                raise
        if slot.batch is not None:
            self._lead(key, slot.batch)
        if slot.finished:
            if slot.error is not None:
                raise slot.error
            return slot.result  # type: ignore[return-value]
        return self._alone(job)

    def _lead(self, key: Hashable, batch: list[_Slot[J, R]]) -> None:
        """Run `batch` (whose first slot is this caller's), wake its other members, then hand
        the key to the next batch. Whatever happens to the run, every member is woken."""
        outcomes: Sequence[R | BaseException | _Alone] | None = None
        interrupted: BaseException | None = None
        try:
            if len(batch) == 1:
                # Alone: the caller's own path, with its own exceptions, still before the
                # hand-off (the next batch must not overlap it).
                try:
                    outcomes = [self._alone(batch[0].job)]
                except Exception as error:
                    outcomes = [error]
            else:
                try:
                    outcomes = self._run([slot.job for slot in batch])
                except Exception:
                    outcomes = None  # every member runs alone
                if outcomes is not None and len(outcomes) != len(batch):
                    outcomes = None
        except BaseException as error:  # a timeout or kill of this greenlet: others go on
            interrupted = error
            outcomes = None
        for position, slot in enumerate(batch):
            slot.batch = None
            if outcomes is not None and outcomes[position] is not ALONE:
                outcome = outcomes[position]
                slot.finished = True
                if isinstance(outcome, BaseException):
                    slot.error = outcome
                else:
                    slot.result = outcome
            if position:
                slot.done.set()
        self._hand_off(key)
        if interrupted is not None:
            raise interrupted

    def _hand_off(self, key: Hashable) -> None:
        with self._lock:
            queue = self._waiting[key]
            if not queue:
                del self._waiting[key]
                return
            batch, self._waiting[key] = queue[: self._max], queue[self._max :]
            leader = batch[0]
            leader.batch = batch
        leader.done.set()
