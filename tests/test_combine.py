"""`clawwits.combine.Combiner`: concurrent jobs of one key run in batches, each exactly once.

Pure: threads and events only. A batch is held open on an event so that the jobs submitted
meanwhile are known to be waiting, which makes every batch's members exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from clawwits.combine import ALONE, Combiner


class Recorder:
    """A run/alone pair that records what ran how, and can hold the first call open."""

    def __init__(self, *, outcome: Callable[[str], object] = str.upper) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []
        self.alone: list[str] = []
        self.outcome = outcome
        self.hold = threading.Event()
        self.held = threading.Event()
        self.running = 0
        self.most_running = 0

    def _enter(self) -> None:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        if not self.held.is_set():
            self.held.set()
            assert self.hold.wait(10)

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    def run(self, jobs: Sequence[str]) -> list[object]:
        self._enter()
        try:
            with self.lock:
                self.batches.append(list(jobs))
            return [self.outcome(job) for job in jobs]
        finally:
            self._leave()

    def run_alone(self, job: str) -> object:
        self._enter()
        try:
            with self.lock:
                self.alone.append(job)
            outcome = self.outcome(job)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        finally:
            self._leave()


def submit_all(combiner: Combiner, recorder: Recorder, jobs: list[str], key: str = "k") -> dict:
    """Submit the first job, wait until it holds its run open, queue the rest behind it, then
    let it go; return each job's result or raised exception."""
    results: dict[str, object] = {}

    def call(job: str) -> None:
        try:
            results[job] = combiner.submit(key, job)
        except Exception as error:  # noqa: BLE001 - the outcome under test
            results[job] = error

    first = threading.Thread(target=call, args=(jobs[0],))
    first.start()
    assert recorder.held.wait(10)
    rest = [threading.Thread(target=call, args=(job,)) for job in jobs[1:]]
    for thread in rest:
        thread.start()
    _wait_queued(combiner, key, len(jobs) - 1)
    recorder.hold.set()
    for thread in [first, *rest]:
        thread.join(10)
    return results


def _wait_queued(combiner: Combiner, key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(combiner._waiting.get(key, ())) < count:
        assert time.monotonic() < deadline, "jobs never queued"
        time.sleep(0.001)


def test_a_job_with_nothing_running_runs_alone_at_once():
    recorder = Recorder()
    recorder.held.set()  # nothing to hold
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)

    assert combiner.submit("k", "a") == "A"

    assert (recorder.alone, recorder.batches) == (["a"], [])
    assert combiner._waiting == {}


def test_jobs_arriving_during_a_run_form_the_next_batch_and_each_gets_its_own_result():
    recorder = Recorder()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)

    results = submit_all(combiner, recorder, ["a", "b", "c", "d"])

    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert recorder.alone == ["a"]
    assert [sorted(batch) for batch in recorder.batches] == [["b", "c", "d"]]
    assert recorder.most_running == 1
    assert combiner._waiting == {}


def test_a_batch_is_at_most_max_batch_jobs_and_the_rest_follow_in_later_batches():
    recorder = Recorder()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=2)

    results = submit_all(combiner, recorder, ["a", "b", "c", "d", "e", "f"])

    assert results == {job: job.upper() for job in "abcdef"}
    # Five queued behind "a": two batches of two, and the fifth alone (a batch of one).
    assert [len(batch) for batch in recorder.batches] == [2, 2]
    assert len(recorder.alone) == 2
    assert recorder.alone[0] == "a"
    ran = recorder.alone + [job for batch in recorder.batches for job in batch]
    assert sorted(ran) == list("abcdef")
    assert recorder.most_running == 1


def test_an_exception_outcome_is_raised_to_its_own_caller_only():
    error = ValueError("c is refused")
    recorder = Recorder(outcome=lambda job: error if job == "c" else job.upper())
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)

    results = submit_all(combiner, recorder, ["a", "b", "c", "d"])

    assert results == {"a": "A", "b": "B", "c": error, "d": "D"}
    assert [sorted(batch) for batch in recorder.batches] == [["b", "c", "d"]]


def test_an_alone_outcome_runs_that_job_alone_after_its_batch():
    recorder = Recorder(outcome=lambda job: ALONE if job == "c" else job.upper())
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)
    # Run alone, "c" gets its real outcome.
    combiner._alone = lambda job: (recorder.run_alone(job), f"{job} alone")[1]

    results = submit_all(combiner, recorder, ["a", "b", "c", "d"])

    assert results == {"a": "a alone", "b": "B", "c": "c alone", "d": "D"}


def test_a_batch_that_fails_as_a_whole_runs_every_member_alone():
    recorder = Recorder()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)

    def failing(jobs: Sequence[str]) -> list[object]:
        recorder.run(jobs)
        raise RuntimeError("the statement failed")

    combiner._run = failing

    results = submit_all(combiner, recorder, ["a", "b", "c"])

    assert results == {"a": "A", "b": "B", "c": "C"}
    assert sorted(recorder.alone) == ["a", "b", "c"]
    assert [sorted(batch) for batch in recorder.batches] == [["b", "c"]]
    assert combiner._waiting == {}


def test_a_wrong_number_of_outcomes_runs_every_member_alone():
    recorder = Recorder()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)
    combiner._run = lambda jobs: [*recorder.run(jobs), "extra"]

    results = submit_all(combiner, recorder, ["a", "b", "c"])

    assert results == {"a": "A", "b": "B", "c": "C"}
    assert sorted(recorder.alone) == ["a", "b", "c"]


def test_a_lone_job_raising_raises_to_its_caller_and_frees_the_key():
    recorder = Recorder(outcome=lambda job: KeyError(job))
    recorder.held.set()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)

    with pytest.raises(KeyError):
        combiner.submit("k", "a")

    assert combiner._waiting == {}


def test_keys_do_not_wait_for_each_other():
    recorder = Recorder()
    combiner = Combiner(recorder.run, recorder.run_alone, max_batch=8)
    holder = threading.Thread(target=combiner.submit, args=("k", "a"))
    holder.start()
    assert recorder.held.wait(10)

    # "a" holds key "k" open; a job of another key runs at once.
    assert combiner.submit("other", "z") == "Z"

    recorder.hold.set()
    holder.join(10)
    # "z" was recorded while "a" was still held open, before "a" was.
    assert recorder.alone == ["z", "a"]


def test_many_threads_each_get_their_own_result_exactly_once():
    calls: list[str] = []
    lock = threading.Lock()

    def run(jobs: Sequence[str]) -> list[str]:
        with lock:
            calls.extend(jobs)
        time.sleep(0.001)
        return [job.upper() for job in jobs]

    def alone(job: str) -> str:
        return run([job])[0]

    combiner = Combiner(run, alone, max_batch=8)
    jobs = [f"job{n}" for n in range(400)]
    results: dict[str, str] = {}

    def call(job: str) -> None:
        results[job] = combiner.submit(n_key(job), job)

    def n_key(job: str) -> str:
        return "even" if int(job[3:]) % 2 == 0 else "odd"

    threads = [threading.Thread(target=call, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert results == {job: job.upper() for job in jobs}
    assert sorted(calls) == sorted(jobs)
    assert combiner._waiting == {}


def test_max_batch_below_one_is_refused():
    with pytest.raises(ValueError, match="max_batch"):
        Combiner(lambda jobs: list(jobs), lambda job: job, max_batch=0)
