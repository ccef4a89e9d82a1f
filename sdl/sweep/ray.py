"""The Ray backend of ``sdl sweep``: the same jobs, run as Ray tasks (the extra ``sdl[ray]``).

Ray is imported here only, when a Ray backend runs. Two ways to get a Ray runtime:

- ``address=None``: a private instance, started for this sweep and stopped after it. It is made
  to stay on this machine: every listener on 127.0.0.1 (Ray's single-machine mode,
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which is checked after start-up), token authentication
  with a random token held in memory (no ``~/.ray/auth_token`` is written), no dashboard, no usage
  statistics, and its processes' HTTP proxy set to a closed loopback port so that Ray's
  cloud-metadata probe (169.254.169.254, made even with usage statistics off) fails here.
- ``address="HOST:PORT"``: an existing cluster (``ray start``); its owner chose how it listens and
  authenticates (see the README).

Where the run folders go: each job runs in a temporary folder on whichever node Ray picked, and
its whole run folder comes back to this process as a tar archive (the task's return value, through
Ray's object store) and is unpacked into the sweep folder here. So a sweep needs no filesystem
shared between machines, and nothing of it stays on the workers.

Faults: a job that raises is a row (``run_job_safely``, as locally); a worker process that dies
(killed, out of memory) is retried by Ray up to ``retries`` times, then becomes a row
(``WORKER_DIED``); Ctrl-C cancels the jobs in flight and stops a private instance.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import sys
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from . import WORKER_DIED, Backend, Job, JobOutcome, Report, run_job_safely

__all__ = ["RayBackend", "ray_runtime"]

_CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there, a request fails at once
_PRIVATE_ENVIRONMENT = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # single-machine mode: every listener on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    **{name: _CLOSED_PORT for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    "no_proxy": "",
    "NO_PROXY": "",
}
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_PROCESS_TOKEN = secrets.token_hex(32)  # private instances only: never written to a file


def _import_ray():
    from .._validation import ConfigError

    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray, which is not installed: pip install 'sdl[ray]'") from None
    return ray


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated by ``values`` inside the block (Ray's processes inherit it at start-up)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def ray_runtime(address: str | None = None, cpus: int | None = None, verbose: bool = False):
    """Ray, connected: to a private instance on loopback with ``cpus`` CPUs (``address`` None),
    stopped on leaving the block, or to the cluster at ``address`` (left running). ``verbose``:
    Ray's own logs and the workers' output on this terminal; otherwise only errors. The
    environment Ray is started with stays set until it has stopped: Ray reads some of it again
    and caches the token per process (so one token serves every private instance of a process)."""
    quiet = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
    private = address is None
    environment = {**_PRIVATE_ENVIRONMENT, "RAY_AUTH_TOKEN": _PROCESS_TOKEN} if private else {"RAY_USAGE_STATS_ENABLED": "0"}
    imported_before = "ray" in sys.modules
    with _environment(environment), _reread_if(imported_before and private):
        ray = _import_ray()
        if private:
            ray.init(address="local", num_cpus=cpus or 2, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
        try:
            if private:
                _check_loopback(ray)
            yield ray
        finally:
            ray.shutdown()


@contextmanager
def _reread_if(imported_before: bool) -> Iterator[None]:
    """Ray read the environment when it was imported; if that was before ours was set, read it
    again as Ray itself does when it turns token authentication on in a running process, and take
    single-machine mode for the block (its constant is read at every look-up of the node's address)."""
    if not imported_before:
        yield
        return
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode


def _check_loopback(ray) -> None:
    """A private instance whose node is not on loopback listens on every interface: refuse it."""
    addresses = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    if not addresses <= set(_LOOPBACK):
        raise RuntimeError(
            f"the private Ray instance runs on {', '.join(sorted(addresses))}, not on loopback only "
            "(Ray did not take its single-machine mode); stopped it. "
            "Set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Python starts, or use --address"
        )


@dataclass(frozen=True)
class RayBackend(Backend):
    """Ray tasks of one CPU each. ``address`` None: a private instance with ``jobs`` CPUs (None: 2);
    otherwise the cluster at ``address``, at most ``jobs`` jobs in flight (None: the cluster's CPUs).
    ``retries``: how often Ray reruns a job whose worker process died before it becomes a row."""

    address: str | None = None
    jobs: int | None = None
    retries: int = 2
    verbose: bool = False

    def run(self, jobs: Sequence[Job], report: Report) -> None:
        with ray_runtime(self.address, self.jobs, self.verbose) as ray:
            task = ray.remote(num_cpus=1, max_retries=self.retries)(_run_and_pack)
            capacity = self.jobs or max(int(ray.cluster_resources().get("CPU", 1)), 1)
            waiting = deque(enumerate(jobs))
            in_flight: dict = {}  # Ray's ObjectRef -> (index, job)
            try:
                while waiting or in_flight:
                    while waiting and len(in_flight) < capacity:
                        index, job = waiting.popleft()
                        in_flight[task.remote(job)] = (index, job)
                    (done,), _ = ray.wait(list(in_flight), num_returns=1)
                    index, job = in_flight.pop(done)
                    report(index, _receive(ray, done, job))
            finally:  # Ctrl-C, or a failure here: nothing goes on running for this sweep
                for ref in in_flight:
                    ray.cancel(ref, force=True)


def _run_and_pack(job: Job) -> tuple[JobOutcome, bytes]:
    """On a worker: run ``job`` in a temporary folder; its outcome (``run``: the run folder's name)
    and the run folder as a tar archive (empty for a failed job)."""
    import ray

    node = ray.get_runtime_context().get_node_id()[:12]
    with tempfile.TemporaryDirectory(prefix="sdl-job-") as scratch:
        outcome = replace(run_job_safely(replace(job, root=scratch)), node=node)
        if not outcome.ok:
            return outcome, b""
        run = Path(outcome.run)
        return replace(outcome, run=run.name), _pack(run)


def _pack(run: Path) -> bytes:
    """The folder ``run`` as an uncompressed tar archive, its members under ``run.name``."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(run, arcname=run.name)
    return archive.getvalue()


def _receive(ray, ref, job: Job) -> JobOutcome:
    """The outcome of the task ``ref`` with its run folder unpacked into ``job.root``; a task that
    Ray could not finish (its worker died ``retries + 1`` times, its node was lost) is a row."""
    try:
        outcome, archive = ray.get(ref)
    except ray.exceptions.WorkerCrashedError:
        return JobOutcome(job.label, note=WORKER_DIED)
    except ray.exceptions.RayError as error:  # the task itself raised (run_job_safely did not), or Ray lost it
        cause = getattr(error, "cause", None) or error
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        return JobOutcome(job.label, note=f"{type(cause).__name__}: {lines[-1] if lines else ''}")
    if not outcome.ok:
        return outcome
    return replace(outcome, run=str(_unpack(archive, Path(job.root), outcome.run)))


def _unpack(archive: bytes, root: Path, name: str, replacing: Path | None = None) -> Path:
    """Unpack the run folder ``name`` from ``archive`` into ``root`` under a name no folder there has
    (``name``, else ``name-1``, ...): first into a hidden temporary folder, then renamed in one step.
    ``replacing``: a folder this process unpacked before (an older copy of the same run), which the
    new copy takes the place of (the old one is moved aside first, then removed)."""
    incoming = Path(tempfile.mkdtemp(dir=root, prefix=".incoming-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            tar.extractall(incoming, filter="data")  # no absolute paths, links out or devices
        if replacing is not None:
            os.rename(replacing, incoming / ".previous")  # removed with the temporary folder
            os.rename(incoming / name, replacing)
            return replacing
        for n in range(1000):
            target = root / (name if n == 0 else f"{name}-{n}")
            if not target.exists():
                os.rename(incoming / name, target)
                return target
        raise RuntimeError(f"no free name for the run folder {name!r} in {root}")
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
