"""Sweeps: many jobs, one backend that runs them, one table of their results.

A ``Job`` is a raw config (plain data, so it can travel to another process or machine), the folder
its run goes into, and a label. ``run_job_safely`` runs one and always returns a ``JobOutcome``: a
job that raises becomes a row with its error. A ``Backend`` runs a list of jobs and reports each
outcome as it arrives:

- ``SerialBackend``: one after the other, in this process.
- ``ProcessPoolBackend``: a local pool of worker processes. A worker that dies (killed, out of
  memory) breaks a ``ProcessPoolExecutor`` and every job in flight with it; the jobs in flight are
  then run again, each alone in a fresh one-worker pool, so that only a job whose own worker dies
  becomes a row ("worker process died"), and the jobs not yet started go on in a new pool.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

__all__ = ["BACKENDS", "Backend", "Job", "JobOutcome", "ProcessPoolBackend", "SerialBackend", "backend", "run_job_safely"]

WORKER_DIED = "worker process died (killed, or out of memory)"


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``config`` a raw config dict, ``root`` the folder that receives its run folder."""

    config: dict
    root: str
    label: str


@dataclass(frozen=True)
class JobOutcome:
    """A row of the results table: ``run`` is the run folder ("" when the job failed), ``metrics`` the
    task's headline metrics of the last evaluation, ``note`` the error of a failed job."""

    label: str
    run: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.run)


def run_job_safely(job: Job) -> JobOutcome:
    """Run one job with one thread (a sweep runs one job per core); an exception is the outcome's note."""
    import torch

    from ..config import config_from_dict
    from ..experiment import run_job
    from ..training import TrainingDiverged

    torch.set_num_threads(1)
    try:
        result = run_job(config_from_dict(job.config), job.root, progress=False)
    except Exception as error:  # one failed job is a row of the table, not the end of the sweep
        note = str(error) if isinstance(error, TrainingDiverged) else f"{type(error).__name__}: {error}"
        return JobOutcome(job.label, note=note)
    return JobOutcome(job.label, str(result.run_dir), {k: result.metrics.get(k, math.nan) for k in result.headline})


Report = Callable[[int, JobOutcome], None]  # (index of the job, its outcome)


class Backend(ABC):
    """Runs jobs and reports each outcome, in any order, as soon as it is known."""

    @abstractmethod
    def run(self, jobs: Sequence[Job], report: Report) -> None:
        """Run every job; call ``report(index, outcome)`` exactly once per job."""


@dataclass(frozen=True)
class SerialBackend(Backend):
    """Every job in this process, one after the other."""

    def run(self, jobs: Sequence[Job], report: Report) -> None:
        for index, job in enumerate(jobs):
            report(index, run_job_safely(job))


@dataclass(frozen=True)
class ProcessPoolBackend(Backend):
    """``workers`` local processes; at most ``workers`` jobs in flight."""

    workers: int = 2

    def run(self, jobs: Sequence[Job], report: Report) -> None:
        waiting = deque(enumerate(jobs))
        while waiting:
            in_flight_at_break = self._run_until_broken(waiting, report)
            for index, job in in_flight_at_break:  # alone, so that a death names its own job
                report(index, _alone(job))

    def _run_until_broken(self, waiting: deque, report: Report) -> list[tuple[int, Job]]:
        """Run jobs from ``waiting`` until it is empty or the pool breaks; returns the jobs that were
        in flight when it broke (they have no outcome yet)."""
        in_flight: dict[Future, tuple[int, Job]] = {}
        lost: list[tuple[int, Job]] = []
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            while (waiting or in_flight) and not lost:
                while waiting and len(in_flight) < self.workers:
                    index, job = waiting.popleft()
                    in_flight[pool.submit(run_job_safely, job)] = (index, job)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index, job = in_flight.pop(future)
                    try:
                        report(index, future.result())
                    except BrokenProcessPool:
                        lost.append((index, job))
            lost += in_flight.values()
        return sorted(lost, key=lambda item: item[0])


def _alone(job: Job) -> JobOutcome:
    with ProcessPoolExecutor(max_workers=1) as pool:
        try:
            return pool.submit(run_job_safely, job).result()
        except BrokenProcessPool:
            return JobOutcome(job.label, note=WORKER_DIED)


BACKENDS = ("local",)


def backend(name: str, jobs: int) -> Backend:
    """The backend ``name`` with ``jobs`` parallel jobs ("local": in this process for 1, a process pool otherwise)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid choices: {', '.join(BACKENDS)}")
    return SerialBackend() if jobs == 1 else ProcessPoolBackend(jobs)
