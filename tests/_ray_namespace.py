"""Runs inside a network namespace of its own (see ``test_sweep_ray.py``): starts Ray through ``sdl``
(or ``ray start``), watches the namespace's sockets while it runs, and prints one JSON line.

Every process in this namespace was started by this script (the namespace is new), so at the end it
stops exactly those, found by their network namespace, never by name.

    python _ray_namespace.py private CONFIG RUNS     a sweep on a private instance; its sockets
    python _ray_namespace.py faults CONFIG RUNS      killed workers, then Ctrl-C, then --resume
    python _ray_namespace.py cluster CONFIG RUNS     a sweep, then sdl tune with a --spec file (CONFIG's
                                                     folder has spec.yaml), on a two-node cluster (ray start)
                                                     whose second node cannot see the test's files
    python _ray_namespace.py tune_resume CONFIG RUNS sdl tune one trial at a time, Ctrl-C, then --resume
    python _ray_namespace.py tune_kill CONFIG RUNS   the same with SIGKILL for Ctrl-C
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

SDL = [sys.executable, "-m", "sdl.cli"]
LOOPBACK = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
TOKEN = "0123456789abcdef" * 4


def _sockets() -> tuple[set[str], set[str]]:
    """(listening addresses, remote addresses of every other TCP/UDP socket) in this namespace."""
    listening = set(subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout.split("\n"))
    listening = {line.split()[3] for line in listening if line.strip()}
    peers = set()
    for line in subprocess.run(["ss", "-Htanu"], capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if fields[1] not in ("LISTEN", "UNCONN"):
            peers.add(f"{fields[1]} {fields[5]}")
    return listening, peers


def _watch(process: subprocess.Popen, on_tick=None) -> dict:
    """Wait for ``process``, recording the sockets seen every 50 ms; ``on_tick()`` runs on each."""
    listening, peers = set(), set()
    while process.poll() is None:
        now_listening, now_peers = _sockets()
        listening |= now_listening
        peers |= now_peers
        if on_tick is not None:
            on_tick()
        time.sleep(0.05)
    out, err = process.communicate()
    return {
        "rc": process.returncode,
        "stdout": out,
        "stderr": err,
        "listening": sorted(listening),
        "off_loopback": sorted(p for p in peers if not p.split()[1].startswith(LOOPBACK)),
    }


def _sdl(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*SDL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _job_workers() -> list[int]:
    """Ray worker processes running a job of a sweep now (their title names the task)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::_run_and_pack"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def private(config: str, runs: str) -> dict:
    seen = _watch(_sdl("sweep", config, "--grid", "integrator=euler,rk4", "--backend", "ray", "--jobs", "2", "--runs", runs))
    return {**seen, "twice": _two_instances_in_one_process(config, runs)}


def _two_instances_in_one_process(config: str, runs: str) -> list[str]:
    """Two private instances, one after the other, in a process that imported Ray before: the
    notes of their jobs ("" when a job finished)."""
    import ray  # noqa: F401  (imported before sdl sets Ray's environment)
    import yaml

    from sdl.sweep import Job, run_sweep
    from sdl.sweep.ray import RayBackend

    notes = []
    for n in range(2):
        out = Path(runs, f"twice-{n}")
        out.mkdir()
        outcomes = run_sweep(out, [Job(yaml.safe_load(Path(config).read_text()), str(out), "tiny")], RayBackend(jobs=1))
        notes += [o.note for o in outcomes]
    return notes


def faults(config: str, runs: str) -> dict:
    """Jobs one at a time: the first job's worker is killed at each of its 3 attempts (2 retries);
    once the second job's row is written, the sweep gets Ctrl-C (SIGINT to its process group, as a
    terminal sends it) while the third runs; then ``--resume`` finishes it on the local backend."""
    killed: list[int] = []
    sweep = _sdl("sweep", config, "--grid", "train.iterations=2,3,1000", "--backend", "ray", "--jobs", "1", "--runs", runs)
    interrupted = [False]

    def tick() -> None:
        for pid in _job_workers():
            if len(killed) < 3 and pid not in killed:
                os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
                killed.append(pid)
        tables = list(Path(runs).glob("sweep-*/results.csv"))
        if not interrupted[0] and tables and len(tables[0].read_text().splitlines()) == 3:
            time.sleep(0.5)
            os.killpg(sweep.pid, signal.SIGINT)
            interrupted[0] = True

    first = _watch(sweep, tick)
    (folder,) = Path(runs).glob("sweep-*")
    before = {p.name: (p / "checkpoint.pt").read_bytes() for p in folder.iterdir() if (p / "checkpoint.pt").is_file()}
    table_before = (folder / "results.csv").read_text()
    listening_after = sorted(_sockets()[0])
    resumed = subprocess.run([*SDL, "sweep", "--resume", str(folder), "--jobs", "1"], capture_output=True, text=True)
    after = {p.name: (p / "checkpoint.pt").read_bytes() for p in folder.iterdir() if (p / "checkpoint.pt").is_file()}
    return {
        **first,
        "killed": len(killed),
        "table_before": table_before,
        "listening_after_ctrl_c": listening_after,
        "resume_rc": resumed.returncode,
        "resume_stderr": resumed.stderr,
        "kept": all(after.get(name) == data for name, data in before.items()),
        "runs_before": len(before),
        "runs_after": len(after),
    }


def cluster(config: str, runs: str) -> dict:
    """A head and a second node (1 CPU each, token authentication) on two non-loopback addresses of
    this namespace; a sweep joins it with --address, then sdl tune (2 trials at once: one per node).
    The second node shares no filesystem with the driver as far as the test's files go."""
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN, RAY_USAGE_STATS_ENABLED="0")
    ray = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--num-cpus",
        "1",
        "--node-ip-address",
        "10.77.0.2",
        "--disable-usage-stats",
    ]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    head = subprocess.run([*ray, "--head", "--port", "6390", "--include-dashboard", "false"], text=True, **quiet)
    # the second node sees no file of this test: a mount namespace of its own, an empty tmpfs over
    # the test's folder (runs/ included), its working directory outside it
    hide = f'cd / && mount -t tmpfs sdl-hidden {shlex.quote(os.getcwd())} && exec "$0" "$@"'
    second = [*ray[:-3], "--node-ip-address", "10.77.0.3", "--disable-usage-stats", "--address", "10.77.0.2:6390"]
    worker = subprocess.run(["unshare", "-m", "sh", "-c", hide, *second], text=True, **quiet)
    if head.returncode or worker.returncode:
        return {"rc": -1, "stderr": head.stderr + worker.stderr}
    sweep = _watch(
        _sdl(
            "sweep",
            config,
            "--grid",
            "train.lr=0.05,0.04,0.03,0.02",
            "--backend",
            "ray",
            "--address",
            "10.77.0.2:6390",
            "--runs",
            runs,
        )
    )
    spec = str(Path(config).with_name("spec.yaml"))
    tune_args = ["--spec", spec, "--space", "integrator=grid:euler,rk4", "--address", "10.77.0.2:6390", "--runs", runs]
    tune = _watch(_sdl("tune", config, *tune_args))
    return {"sweep": sweep, "tune": tune, "second_node_sees": _seen_from_another_mount_namespace(os.getcwd())}


def _seen_from_another_mount_namespace(folder: str) -> list[list[str]]:
    """What each process of this network namespace that lives in another mount namespace (the
    second node's) finds in ``folder``, looked at through its own root."""
    mine = os.readlink("/proc/self/ns/mnt")
    net = os.readlink("/proc/self/ns/net")
    seen = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "ns/net") == net and os.readlink(proc / "ns/mnt") != mine:
                seen.append(sorted(os.listdir(f"{proc}/root{folder}")))
        except OSError:
            continue
    return seen


def tune_resume(config: str, runs: str, stop: signal.Signals = signal.SIGINT) -> dict:
    """Three trials, one at a time, 4 reports each (iterations 400, logged every 100): lr 0.05
    finishes; Ctrl-C (``stop``, SIGINT by default, to the process group) once lr 0.1 has shipped its
    first report; then ``--resume`` reruns lr 0.1 and runs lr 1e-9, which ASHA stops at its first rung
    (its loss 0.135 against 0.07-0.09 of the others there). With SIGKILL the driver and whatever Ray
    started in its process group die without a word."""
    sweep = _sdl(
        "tune",
        config,
        "--space",
        "train.lr=grid:0.05,0.1,1.0e-9",
        "--metric",
        "loss",
        "--samples",
        "1",
        "--jobs",
        "1",
        "--set",
        "train.iterations=400",
        "--set",
        "train.log_every=100",
        "--runs",
        runs,
    )
    interrupted = [False]

    def logged(run: Path) -> int:
        try:
            return len(json.loads((run / "metrics.json").read_text())["iteration"])
        except (OSError, ValueError, KeyError):
            return 0

    def tick() -> None:
        runs_now = [p for p in Path(runs).glob("tune-*/tiny-*") if p.is_dir()]
        if not interrupted[0] and len(runs_now) == 2 and sorted(map(logged, runs_now))[0] >= 1:
            os.killpg(sweep.pid, stop)
            interrupted[0] = True

    first = _watch(sweep, tick)
    # After SIGKILL, Ray's processes outside the driver's process group (a trial's actor) run on until
    # they notice; the user resumes once they are gone, and so does this scenario (60 s at most).
    gone_after = _wait_until_alone(60.0) if stop == signal.SIGKILL else 0.0
    (folder,) = Path(runs).glob("tune-*")
    before = {p.name: (p / "checkpoint.pt").read_bytes() for p in folder.glob("tiny-*")}
    logged_before = {p.name: logged(p) for p in folder.glob("tiny-*")}
    table_before = (folder / "results.csv").read_text() if (folder / "results.csv").is_file() else ""
    listening_after = sorted(_sockets()[0])
    resumed = subprocess.run([*SDL, "tune", "--resume", str(folder), "--jobs", "1"], capture_output=True, text=True)
    return {
        **first,
        "table_before": table_before,
        "logged_before": logged_before,
        "listening_after_ctrl_c": listening_after,
        "leftover_processes_gone_after_s": gone_after,
        "resume_rc": resumed.returncode,
        "resume_stdout": resumed.stdout,
        "resume_stderr": resumed.stderr,
        "kept": all((folder / name / "checkpoint.pt").read_bytes() == data for name, data in before.items()),
        "logged_after": {p.name: logged(p) for p in folder.glob("tiny-*")},
        "leftovers": sorted(p.name for p in folder.glob(".*")),
    }


def tune_kill(config: str, runs: str) -> dict:
    """``tune_resume`` with SIGKILL for Ctrl-C: the driver gets no chance to save anything."""
    return tune_resume(config, runs, signal.SIGKILL)


def _others_here() -> list[int]:
    """Every other live process in this network namespace (all of them started by this script)."""
    mine, found = os.readlink("/proc/self/ns/net"), []
    for proc in Path("/proc").iterdir():
        try:
            alive = (proc / "cmdline").read_bytes() != b""  # a zombie has no command line
            if proc.name.isdigit() and int(proc.name) != os.getpid() and os.readlink(proc / "ns" / "net") == mine and alive:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _wait_until_alone(limit: float) -> float | None:
    """Seconds until no other process and no listening socket is left in this namespace, or None after
    ``limit`` seconds. Both, because a process being killed loses its command line (and then its
    namespace links) before the kernel has closed its files: for a moment it holds sockets unseen."""
    start = time.monotonic()
    while _others_here() or _sockets()[0]:
        if time.monotonic() - start > limit:
            return None
        time.sleep(0.2)
    return time.monotonic() - start


def _stop_everything_started_here() -> None:
    """SIGKILL every other process in this network namespace: all of them were started by this script."""
    for pid in _others_here():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


if __name__ == "__main__":
    scenario, config, runs = sys.argv[1:4]
    try:
        result = {"private": private, "faults": faults, "cluster": cluster, "tune_resume": tune_resume, "tune_kill": tune_kill}[
            scenario
        ](config, runs)
    finally:
        _stop_everything_started_here()
    print(json.dumps(result))
