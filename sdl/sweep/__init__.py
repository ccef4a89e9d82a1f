"""Sweeps: many jobs, one backend that runs them, one table of their results.

A ``Job`` is a raw config (plain data, so it can travel to another process or machine), the folder
its run goes into, and a label. ``run_job_safely`` runs one and always returns a ``JobOutcome``: a
job that raises becomes a row with its error. A ``Backend`` runs a list of jobs and reports each
outcome as it arrives:

- ``SerialBackend``: one after the other, in this process.
- ``ProcessPoolBackend``: a local pool of worker processes. A worker that dies (killed, out of
  memory) breaks a ``ProcessPoolExecutor`` and every job in flight with it; the jobs in flight are
  then run again, each alone in a fresh one-worker pool, so that only a job whose own worker dies
  becomes a row ("worker process died"), and the jobs not yet started go on in a new pool. The
  workers ignore Ctrl-C; this process, on Ctrl-C, reports the jobs that had finished, terminates its
  own workers (the jobs in flight stop where they are, their run folders left without a row, so
  ``resume_sweep`` runs them again into new folders) and raises ``KeyboardInterrupt``.
- ``RayBackend`` (``sdl.sweep.ray``, the extra ``sdl[ray]``): a private Ray instance on loopback,
  or an existing Ray cluster; each run folder is shipped back to this process and written here.

A sweep folder holds ``sweep.yaml`` (every job's label and config, written before any job runs),
one run folder per finished job, and ``results.csv``/``results.md``, rewritten atomically as jobs
finish. ``resume_sweep`` reads them back, so an interrupted sweep finishes only its missing jobs.
"""

from __future__ import annotations

import csv
import math
import signal
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BACKENDS",
    "Backend",
    "Job",
    "JobOutcome",
    "ProcessPoolBackend",
    "SerialBackend",
    "backend",
    "resume_sweep",
    "run_job_safely",
    "run_sweep",
    "write_table",
]

WORKER_DIED = "worker process died (killed, or out of memory)"
SWEEP_FILE = "sweep.yaml"


@dataclass(frozen=True)
class Job:
    """One run of a sweep: ``config`` a raw config dict, ``root`` the folder that receives its run folder."""

    config: dict
    root: str
    label: str


@dataclass(frozen=True)
class JobOutcome:
    """A row of the results table: ``run`` is the run folder ("" when the job failed), ``metrics`` the
    task's headline metrics of the last evaluation, ``note`` the error of a failed job, ``node`` where
    it ran when that is another process's business (the Ray node's id; not part of the table)."""

    label: str
    run: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""
    node: str = ""

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
        broken = False
        with _pool(self.workers) as pool:
            try:
                while ((waiting and not broken) or in_flight) and not lost:
                    while waiting and not broken and len(in_flight) < self.workers:
                        try:
                            future = pool.submit(run_job_safely, waiting[0][1])
                        except BrokenProcessPool:  # a worker died since the last wait; the job stays waiting
                            broken = True
                        else:
                            in_flight[future] = waiting.popleft()
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        index, job = in_flight.pop(future)
                        try:
                            report(index, future.result())
                        except BrokenProcessPool:
                            lost.append((index, job))
            except KeyboardInterrupt:  # a job that finished before Ctrl-C keeps its row
                for future, (index, _job) in in_flight.items():
                    if future.done() and not future.cancelled() and future.exception() is None:
                        report(index, future.result())
                raise
            lost += in_flight.values()
        return sorted(lost, key=lambda item: item[0])


def _ignore_ctrl_c() -> None:
    """In a pool's worker: a terminal's Ctrl-C goes to the whole process group; the sweep's own
    process decides what happens to the jobs (it terminates the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers are terminated (only they: the pool's own processes) when the
    block is left by an exception, Ctrl-C included, so that no job runs on after its sweep."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_ctrl_c) as pool:
        try:
            yield pool
        except BaseException:
            processes = list((pool._processes or {}).values())  # pid -> Process (a private name, since 3.2)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(5)
                if process.is_alive():
                    process.kill()
                    process.join()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _alone(job: Job) -> JobOutcome:
    with _pool(1) as pool:
        try:
            return pool.submit(run_job_safely, job).result()
        except BrokenProcessPool:
            return JobOutcome(job.label, note=WORKER_DIED)


BACKENDS = ("local", "ray")


def backend(name: str, jobs: int | None, address: str | None = None, verbose: bool = False) -> Backend:
    """The backend ``name`` with ``jobs`` parallel jobs. "local": in this process for 1 job, a process
    pool otherwise (``jobs`` None: 2). "ray": a private Ray instance with ``jobs`` CPUs, or the Ray
    cluster at ``address`` with at most ``jobs`` jobs in flight (None: one per CPU of the cluster)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid choices: {', '.join(BACKENDS)}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs={jobs}: must be ≥ 1")
    if name == "ray":
        from .ray import RayBackend  # Ray is imported only by the Ray backend

        return RayBackend(address=address, jobs=jobs, verbose=verbose)
    if address is not None:
        raise ValueError(f"address={address!r} is for the ray backend only; the local backend runs on this machine")
    jobs = 2 if jobs is None else jobs
    return SerialBackend() if jobs == 1 else ProcessPoolBackend(jobs)


def run_sweep(
    out: str | Path,
    jobs: Sequence[Job],
    runner: Backend,
    outcomes: Sequence[JobOutcome | None] | None = None,
    progress: Report | None = None,
) -> list[JobOutcome]:
    """Run the jobs of the sweep folder ``out`` that have no outcome yet (``outcomes``: None for all)
    with ``runner``; ``results.csv``/``results.md`` always hold every finished job, and ``progress``
    hears of each new outcome. Returns the outcome of every job (an interrupted sweep raises, its
    table on disk holding what finished)."""
    out = Path(out)
    _write_jobs(out, jobs)
    known: list[JobOutcome | None] = list(outcomes) if outcomes is not None else [None] * len(jobs)
    missing = [index for index, outcome in enumerate(known) if outcome is None]

    def record(position: int, outcome: JobOutcome) -> None:
        known[missing[position]] = outcome
        write_table(out, [o for o in known if o is not None])
        if progress is not None:
            progress(missing[position], outcome)

    runner.run([jobs[index] for index in missing], record)
    finished = [o for o in known if o is not None]
    if len(finished) != len(jobs):
        raise RuntimeError(f"the backend reported {len(finished)} of {len(jobs)} jobs")
    write_table(out, finished)
    return finished


def resume_sweep(out: str | Path) -> tuple[list[Job], list[JobOutcome | None]]:
    """The jobs of the sweep folder ``out`` and the outcome of each one that finished (a row with its
    run folder on disk); None for every other one, which ``run_sweep`` then runs into new folders."""
    from ..config import ConfigError, read_yaml

    out = Path(out)
    path = out / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SWEEP_FILE} in {str(out)!r}; is it a sweep folder written by 'sdl sweep'?")
    saved = read_yaml(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("jobs"), list):
        raise ConfigError(f"{path}: expected a mapping with a list 'jobs' of {{label, config}}")
    jobs = [Job(item["config"], str(out), item["label"]) for item in saved["jobs"]]
    finished = {}
    if (out / "results.csv").is_file():
        with (out / "results.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["run"] and (out / Path(row["run"]).name / "checkpoint.pt").is_file():  # the folder may have moved
                    metrics = {k: float(v) for k, v in row.items() if k not in ("label", "run", "note")}
                    finished[row["label"]] = JobOutcome(row["label"], str(out / Path(row["run"]).name), metrics)
    return jobs, [finished.get(job.label) for job in jobs]


def _write_jobs(out: Path, jobs: Sequence[Job]) -> None:
    import yaml

    from ..experiment import write_atomic

    text = yaml.safe_dump({"jobs": [{"label": job.label, "config": job.config} for job in jobs]}, sort_keys=False)
    write_atomic(out / SWEEP_FILE, lambda path: path.write_text(text))


def write_table(out: str | Path, outcomes: Sequence[JobOutcome]) -> list[str]:
    """results.csv and results.md of the outcomes so far; returns the markdown lines."""
    from ..experiment import write_atomic

    out = Path(out)
    names = next((list(o.metrics) for o in outcomes if o.ok), [])
    rows = [{"label": o.label, **{n: o.metrics.get(n, math.nan) for n in names}, "run": o.run, "note": o.note} for o in outcomes]

    def write_csv(path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["label", *names, "run", "note"])
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(out / "results.csv", write_csv)
    titles = [n.replace("_", " ") for n in names]
    lines = ["| run | " + " | ".join(titles) + (" | " if titles else "") + "note |", "|---|" + "---:|" * len(names) + "---|"]
    lines += ["| " + " | ".join([str(r["label"]), *(f"{r[n]:.4g}" for n in names), str(r["note"])]) + " |" for r in rows]
    write_atomic(out / "results.md", lambda path: path.write_text("\n".join(lines) + "\n"))
    return lines
