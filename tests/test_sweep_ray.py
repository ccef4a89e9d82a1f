"""``sdl sweep --backend ray`` with a real Ray, always inside a network namespace of its own.

Ray probes addresses off the machine when it starts (cloud metadata, public DNS), so each test runs
``_ray_namespace.py`` under ``unshare -n``: a new namespace with loopback and a veth pair whose
default route leads nowhere (a non-loopback address for Ray to find, and nothing ever leaves). A
machine where the namespace cannot be made skips these tests; they never fall back to the host's
network.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_sweep import TINY as SWEEP_TINY

pytest.importorskip("ray", reason="the Ray backend needs the extra sdl[ray]")

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("_ray_namespace.py")
NAMESPACE = (
    "ip link set lo up && ip link add sdl0 type veth peer name sdl1 && ip addr add 10.77.0.2/24 dev sdl0 && "
    "ip addr add 10.77.0.3/24 dev sdl0 && "
    "ip link set sdl0 up && ip link set sdl1 up && ip route add default via 10.77.0.1 dev sdl0"
)
TINY = {**SWEEP_TINY, "train": {**SWEEP_TINY["train"], "iterations": 4, "log_every": 2}}


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs unshare, ip and ss (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", NAMESPACE], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot create a network namespace here: {probe.stderr.strip()}"


pytestmark = pytest.mark.skipif(_namespace_problem() is not None, reason=str(_namespace_problem()))


def _in_namespace(scenario: str, tmp_path: Path) -> dict:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    command = f'{NAMESPACE} && exec "$0" "$@"'
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", command, sys.executable, str(HARNESS), scenario, str(config), "runs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _rows(folder: Path) -> dict[str, dict]:
    with (folder / "results.csv").open() as handle:
        return {row["label"]: row for row in csv.DictReader(handle)}


def test_a_private_instance_listens_on_loopback_only_is_quiet_and_matches_the_local_pool(tmp_path):
    seen = _in_namespace("private", tmp_path)
    assert seen["rc"] == 0, seen["stderr"]
    assert seen["listening"], "Ray's listeners were never seen"
    assert all(address.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for address in seen["listening"]), seen["listening"]
    assert not any(address.endswith(":8265") for address in seen["listening"])  # no dashboard
    assert seen["off_loopback"] == []  # no cloud-metadata probe, no DNS look-up, nothing but loopback
    assert not (tmp_path / "home" / ".ray").exists()  # the token stayed in memory
    assert all(line.startswith("sdl sweep: ") for line in seen["stderr"].splitlines()), seen["stderr"]  # no Ray banners
    assert seen["twice"] == ["", ""]  # a second private instance in one process (Ray imported first) authenticates too

    (ray_sweep,) = (tmp_path / "runs").glob("sweep-tiny-*")
    from sdl import cli

    assert (
        cli.main(
            [
                "sweep",
                str(tmp_path / "tiny.yaml"),
                "--grid",
                "integrator=euler,rk4",
                "--jobs",
                "2",
                "--runs",
                str(tmp_path / "local"),
            ]
        )
        == 0
    )
    (local_sweep,) = (tmp_path / "local").glob("sweep-tiny-*")
    ray_rows, local_rows = _rows(ray_sweep), _rows(local_sweep)
    assert list(ray_rows) == list(local_rows) == ["integrator=euler", "integrator=rk4"]
    for label, row in ray_rows.items():
        metrics = {k: v for k, v in row.items() if k not in ("run", "note")}
        assert metrics == {k: v for k, v in local_rows[label].items() if k not in ("run", "note")}  # bit for bit, as text
        ray_run, local_run = tmp_path / row["run"], Path(local_rows[label]["run"])
        assert ray_run.parent == ray_sweep  # shipped back into the sweep folder
        assert json.loads((ray_run / "metrics.json").read_text()) == json.loads((local_run / "metrics.json").read_text())
    assert (ray_sweep / "results.png").stat().st_size > 1000 and not list(ray_sweep.glob(".incoming-*"))


def test_a_dead_worker_is_retried_twice_then_a_row_and_ctrl_c_then_resume_finishes_the_rest(tmp_path):
    seen = _in_namespace("faults", tmp_path)
    assert seen["killed"] == 3  # the first attempt and two retries
    assert seen["rc"] == 130, seen["stderr"]
    assert "sdl sweep --resume" in seen["stderr"]
    rows_before = seen["table_before"].splitlines()
    assert len(rows_before) == 3 and "worker process died" in rows_before[1] and "train.iterations=3" in rows_before[2]
    assert seen["listening_after_ctrl_c"] == []  # the private instance is gone
    assert seen["resume_rc"] == 0, seen["resume_stderr"]
    assert seen["kept"] and seen["runs_before"] == 1 and seen["runs_after"] == 3  # nothing overwritten; two new runs
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    rows = _rows(folder)
    assert [row["note"] for row in rows.values()] == ["", "", ""]
    assert resumed_only_the_missing(seen["resume_stderr"])


def resumed_only_the_missing(stderr: str) -> bool:
    finished = [line for line in stderr.splitlines() if line.startswith("sdl sweep: ")]
    return (
        len(finished) == 2 and finished[-1].startswith("sdl sweep: 3/3") and not any("iterations=3:" in line for line in finished)
    )


@pytest.fixture(scope="module")
def on_a_cluster(tmp_path_factory):
    """One two-node cluster for a sweep and a tune: (what the harness saw, the test's folder)."""
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "spec.yaml").write_text(
        yaml.safe_dump(
            {
                "space": {"train.lr": {"loguniform": [1.0e-3, 1.0e-1]}, "model.width": {"choice": [2, 3]}},
                "metric": "val_accuracy",
                "mode": "max",
                "samples": 1,
            }
        )
    )
    return _in_namespace("cluster", folder), folder


def test_a_sweep_joins_a_two_node_cluster_with_token_authentication_and_uses_both_nodes(on_a_cluster):
    """The second node cannot see the test's folder (a mount namespace of its own): its jobs' run
    folders reach the sweep folder only by being shipped back to the driver."""
    everything, tmp_path = on_a_cluster
    seen_there = everything["second_node_sees"]  # its own empty tmpfs, where its processes made a HOME
    assert seen_there and not any({"runs", "tiny.yaml", "spec.yaml"} & set(names) for names in seen_there), seen_there
    seen = everything["sweep"]
    assert seen["rc"] == 0, seen["stderr"]
    nodes = {line.rsplit(" on node ", 1)[1] for line in seen["stderr"].splitlines() if " on node " in line}
    assert len(nodes) == 2, seen["stderr"]
    (folder,) = (tmp_path / "runs").glob("sweep-tiny-*")
    rows = _rows(folder)
    assert len(rows) == 4 and all(
        row["note"] == "" and (tmp_path / row["run"] / "checkpoint.pt").is_file() for row in rows.values()
    )


def test_tune_searches_the_space_each_trial_a_run_folder_and_best_yaml_trains_unchanged(on_a_cluster):
    """On the two-node cluster, two trials at once (one per node): each trial's run folder is in the
    tune folder, also the one trained on the node that cannot see it (shipped to the driver)."""
    everything, tmp_path = on_a_cluster
    seen = everything["tune"]
    assert seen["rc"] == 0, seen["stderr"]
    assert seen["stderr"] == ""  # Tune's reporter is silent
    (folder,) = (tmp_path / "runs").glob("tune-tiny-*")
    rows = _rows(folder)
    assert len(rows) == 2 and {label.split(", ")[-1] for label in rows} == {"integrator=euler", "integrator=rk4"}
    for row in rows.values():
        config = yaml.safe_load((tmp_path / row["run"] / "config.yaml").read_text())
        assert 1e-3 <= config["train"]["lr"] <= 1e-1 and config["model"]["width"] in (2, 3)
        assert (tmp_path / row["run"] / "checkpoint.pt").is_file() and (tmp_path / row["run"]).parent == folder
    records = [json.loads(path.read_text().splitlines()[-1]) for path in (folder / "ray" / "tune").glob("*/result.json")]
    assert len({record["node"] for record in records}) == 2  # one trial on each node
    best_value = max(float(row["val_accuracy"]) for row in rows.values())
    best = yaml.safe_load((folder / "best.yaml").read_text())
    (best_row,) = [
        row
        for row in rows.values()
        if yaml.safe_load((tmp_path / row["run"] / "config.yaml").read_text())["train"]["lr"] == best["train"]["lr"]
    ]
    assert float(best_row["val_accuracy"]) == best_value

    from sdl import cli

    assert cli.main(["train", str(folder / "best.yaml"), "--runs", str(tmp_path / "again"), "--no-progress"]) == 0
    (again,) = (tmp_path / "again").iterdir()
    if best_row["note"] == "":  # a trial that trained to the end: the same config gives the same metrics, bit for bit
        trial = json.loads((tmp_path / best_row["run"] / "metrics.json").read_text())
        assert json.loads((again / "metrics.json").read_text()) == trial


def test_tune_ctrl_c_then_resume_finishes_only_the_missing_trials_and_asha_stops_the_bad_one(tmp_path):
    """One trial at a time, 4 reports each: lr 0.05 finishes, Ctrl-C while lr 0.1 runs, then
    --resume runs lr 0.1 again (a new folder; the interrupted one is kept) and lr 1e-9, which ASHA
    stops at its first rung (grace period 1): its run folder holds 1 of 4 logged evaluations."""
    seen = _in_namespace("tune_resume", tmp_path)
    assert seen["rc"] == 130 and "sdl tune --resume" in seen["stderr"], seen["stderr"]
    assert all(line.startswith("sdl tune: ") for line in seen["stderr"].splitlines()), seen["stderr"]  # quiet
    assert seen["off_loopback"] == [] and seen["listening_after_ctrl_c"] == []
    before = sorted(seen["logged_before"].values())
    assert before[-1] == 4 and 1 <= before[0] < 4, seen["logged_before"]  # lr 0.1 was stopped part-way
    assert [line.split(",")[0] for line in seen["table_before"].splitlines()] == ["label", "train.lr=0.05"]
    assert seen["resume_rc"] == 0 and seen["resume_stderr"] == "", seen["resume_stderr"]
    assert seen["kept"] and seen["leftovers"] == []  # nothing finished (or interrupted) was overwritten
    (folder,) = (tmp_path / "runs").glob("tune-tiny-*")
    rows = _rows(folder)
    assert sorted(rows) == ["train.lr=0.05", "train.lr=0.1", "train.lr=1e-09"]
    assert rows["train.lr=0.05"]["run"] in seen["table_before"]  # the finished trial did not run again
    new = {Path(row["run"]).name for row in rows.values()} - set(seen["logged_before"])
    assert len(new) == 2 and len(seen["logged_after"]) == 4  # two new run folders, the four all kept
    assert rows["train.lr=0.1"]["note"] == "" and seen["logged_after"][Path(rows["train.lr=0.1"]["run"]).name] == 4
    assert rows["train.lr=1e-09"]["note"] == "stopped early by ASHA at iteration 100"
    assert seen["logged_after"][Path(rows["train.lr=1e-09"]["run"]).name] == 1
    assert yaml.safe_load((folder / "best.yaml").read_text())["train"]["lr"] == 0.05  # lowest loss at the end


def test_tune_killed_with_sigkill_then_resume_finishes_the_search_and_destroys_nothing(tmp_path):
    """The driver's process group gets SIGKILL while lr 0.1 runs (nothing can be saved at that moment).
    The Ray processes outside that group (the trial's actor) stop by themselves within seconds. Then
    --resume finishes the search from Tune's last saved state: every run folder that existed is kept
    byte for byte, and the table has each of the three trials once. (lr 0.05 may run again, in a new
    folder: Tune saves its state at intervals, and the kill can come before it recorded the finish.)"""
    seen = _in_namespace("tune_kill", tmp_path)
    brief = {key: value for key, value in seen.items() if key not in ("stdout", "resume_stdout", "listening")}
    assert seen["rc"] == -9 and seen["off_loopback"] == [], brief
    assert seen["leftover_processes_gone_after_s"] is not None and seen["listening_after_ctrl_c"] == [], brief
    # lr 0.05 had finished and lr 0.1 had begun; the orphaned actor may log a report or two more.
    assert sorted(seen["logged_before"].values())[-1] == 4 and len(seen["logged_before"]) == 2, brief
    assert seen["resume_rc"] == 0 and seen["resume_stderr"] == "", brief
    assert seen["kept"] and seen["leftovers"] == [], brief
    (folder,) = (tmp_path / "runs").glob("tune-tiny-*")
    rows = _rows(folder)
    assert sorted(rows) == ["train.lr=0.05", "train.lr=0.1", "train.lr=1e-09"], rows
    rerun = Path(rows["train.lr=0.1"]["run"]).name
    assert rerun not in seen["logged_before"] and rows["train.lr=0.1"]["note"] == "", (rows, brief)  # in a new folder
    assert seen["logged_after"][rerun] == 4, brief
    assert rows["train.lr=1e-09"]["note"] == "stopped early by ASHA at iteration 100", rows
    assert yaml.safe_load((folder / "best.yaml").read_text())["train"]["lr"] == 0.05
