"""Which jobs of one remediator invocation start (handlers/remediation.StartGuard; docs/architecture.md §7, "Jobs
in batches"): the functional side is tests/functional/test_remediator_batches.py."""

from __future__ import annotations

from macie_chatops.handlers.remediation import MIN_SECONDS_FOR_A_JOB, StartGuard, seconds_needed

GIB = 1024**3


def test_a_later_job_needs_a_minute_and_its_bytes_at_50_mib_per_second() -> None:
    assert seconds_needed(0) == MIN_SECONDS_FOR_A_JOB == 60
    assert 65 < seconds_needed(256 * 1024**2) < 66  # the default multipart threshold
    assert 162 < seconds_needed(5 * GIB) < 163  # the largest single-part copy
    assert seconds_needed(41 * GIB) < 900 < seconds_needed(42 * GIB)  # beyond: only an invocation's first job


def test_the_first_job_starts_whatever_its_size_and_a_later_one_when_its_object_fits() -> None:
    # GIVEN an invocation with its whole timeout left
    left = [899.0]
    guard = StartGuard(lambda: left[0])
    # THEN its first job starts, even one whose object no invocation could move in time (5 TiB)
    assert guard.any_job() and guard.starts(5 * 1024**4)
    # AND later jobs start while the time left covers their object: a small one with a minute, 5 GiB with 163 s
    left[0] = 60.1
    assert guard.starts(1024)
    assert not guard.starts(5 * GIB)
    left[0] = 163.0
    assert guard.starts(5 * GIB)
    # AND below a minute, none (the handler asks before reading the record)
    left[0] = 59.9
    assert not guard.any_job()


def test_only_a_first_job_too_large_for_the_time_left_passes_the_rest_on_before_it_starts() -> None:
    # GIVEN an invocation with 300 s left whose guard records each pass-on (the handler's LaterJobs.pass_on)
    left = [300.0]
    passed_on: list[float] = []
    guard = StartGuard(lambda: left[0], before_overrun=passed_on.append)
    # WHEN its first job's object needs more than that (5 GiB needs 163 s; 20 GiB about 470 s)
    assert guard.starts(20 * GIB)
    # THEN the rest were passed on first, told the time left, and the job still started
    assert passed_on == [300.0]
    # AND a later job too large is refused, passing nothing on again; one that fits starts
    assert not guard.starts(20 * GIB)
    assert guard.starts(5 * GIB)
    assert passed_on == [300.0]


def test_a_first_job_that_fits_passes_nothing_on() -> None:
    # GIVEN an invocation with its whole timeout left
    passed_on: list[float] = []
    guard = StartGuard(lambda: 899.0, before_overrun=passed_on.append)
    # WHEN its first job's object fits (5 GiB) THEN it starts and nothing is passed on
    assert guard.starts(5 * GIB)
    assert passed_on == []
