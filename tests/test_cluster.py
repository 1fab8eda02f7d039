"""`run --address` on a real multi-node Ray cluster on this machine (tests/local_cluster.py: a head and two
1-CPU worker nodes on 127.0.0.1), and the checks before a cluster search. The worker nodes import another
fer_search than this checkout (a stand-in install first on their PYTHONPATH), so the search runs only with
--ship-code, which sends this checkout with it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_search.cli import main
from fer_search.errors import UserError
from fer_search.search import cluster_checks, layout
from local_cluster import local_cluster

SPACE = str(Path(__file__).parent / "spaces" / "tiny_simple_cnn.yaml")
# Epochs long enough (more training images than the other search tests) that a trial seen on a node still runs
# there when the node is removed: a few tenths of a second each with 256 images, too short to aim at.
TRIALS, EPOCHS, EPOCHS_LEFT, TRAIN_IMAGES = 4, 6, 3, 2048


@pytest.fixture(scope="module")
def other_install(tmp_path_factory) -> Path:
    """A folder with another fer_search in it: what the worker nodes import unless the code is shipped."""
    folder = tmp_path_factory.mktemp("other_install")
    (folder / "fer_search").mkdir()
    (folder / "fer_search" / "__init__.py").write_text('__version__ = "0.0.1"  # an older install\n')
    return folder


@pytest.fixture(scope="module")
def cluster(other_install):
    path = os.pathsep.join(p for p in (str(other_install), os.environ.get("PYTHONPATH")) if p)
    with local_cluster(head_cpus=0, worker_cpus=(1, 1), worker_env={"PYTHONPATH": path}) as running:
        yield running


def _run_command(cluster, storage: Path, *options: str) -> list[str]:
    """The driver's command line. Run it outside the checkout: Ray puts the driver's working directory on every
    node's Python path, and the checkout's folder would hide the worker nodes' own install."""
    return [sys.executable, "-m", "fer_search", "run", "--space", SPACE, "--data", "synthetic", "--storage",
            str(storage), "--address", cluster.address, "--max-train-images", str(TRAIN_IMAGES), *options]


@pytest.mark.slow
def test_a_node_with_other_code_is_refused_before_any_trial(cluster, other_install, tmp_path):
    command = _run_command(cluster, tmp_path, "--storage-shared", "--name", "refused", "--num-samples", "1",
                           "--max-epochs", "1")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: 2 of 3 node(s) would not run this checkout's code")
    assert error.count(f"another fer_search ({other_install / 'fer_search'})") == 2
    assert "pass --ship-code" in error
    assert not list((tmp_path / "refused").glob("*/params.json"))  # no trial started


def _running_on(node_id: str, storage: Path, name: str) -> str | None:
    """A trial whose latest result came from `node_id` and that has EPOCHS_LEFT or more epochs left to run there."""
    if not (storage / name).is_dir():
        return None
    for trial in layout.list_trials(storage, name):
        last = trial.last_result
        if last.get(layout.NODE_KEY) == node_id and last["epoch"] <= EPOCHS - EPOCHS_LEFT:
            return trial.name
    return None


@pytest.mark.slow
def test_a_search_spreads_over_nodes_and_survives_losing_one(cluster, tmp_path, capsys):
    storage, name = tmp_path / "runs", "multi"
    # A checkpoint every epoch: the retried trial then reports no epoch twice (with the default policy it may
    # retrain the epochs since its last checkpoint).
    command = _run_command(cluster, storage, "--storage-shared", "--ship-code", "--name", name, "--num-samples",
                           str(TRIALS), "--max-epochs", str(EPOCHS), "--grace-period", str(EPOCHS),
                           "--checkpoint-every", "1")
    lost = sorted(cluster.worker_nodes, key=lambda node: node.node_id)[-1]
    with open(tmp_path / "driver.log", "w+") as log:
        driver = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            interrupted = None
            while interrupted is None and driver.poll() is None and time.monotonic() < deadline:
                interrupted = _running_on(lost.node_id, storage, name)
                time.sleep(0.2)
            assert interrupted, "no trial ran on the worker node to remove"
            cluster.remove_node(lost, allow_graceful=False)  # killed outright, as a crashed machine
            driver.wait(timeout=900)
        finally:
            if driver.poll() is None:
                driver.kill()
        log.seek(0)
        printed = log.read()
    assert driver.returncode == 0, printed
    assert f"retry  {interrupted}" in printed

    trials = layout.list_trials(storage, name)
    assert len(trials) == TRIALS and all(t.status == layout.COMPLETED and t.epochs == EPOCHS for t in trials)
    assert all(t.model_path and t.probs_path for t in trials)
    for trial in trials:
        # Each epoch reported once, in order: a trial restored from its checkpoint goes on, none starts over.
        assert [r["epoch"] for r in trial.results] == list(range(1, EPOCHS + 1)), trial.name
    nodes = {node for t in trials for node in t.nodes}
    assert len(nodes) >= 2 and lost.node_id in nodes
    moved = [r[layout.NODE_KEY] for r in next(t for t in trials if t.name == interrupted).results]
    on_lost = moved.count(lost.node_id)  # its first epochs, then the rest on a surviving node
    assert on_lost >= 1 and moved[:on_lost] == [lost.node_id] * on_lost and len(moved) > on_lost
    # The driver put the data set into the object store once; every trial on every node read that object.
    assert len({r["data_object_id"] for t in trials for r in t.results}) == 1

    assert main(["leaderboard", "--storage", str(storage), "--name", name]) == 0
    board = capsys.readouterr().out
    assert f"{TRIALS} trials: {TRIALS} completed" in board and f"; ran on {len(nodes)} nodes" in board
    assert f"{layout.short_node_id(lost.node_id)}->" in board  # the interrupted trial: its node, then the one it was restored on
    assert main(["ensemble", "--storage", str(storage), "--name", name, "--top", "2",
                 "--out", str(tmp_path / "ens")]) == 0
    assert (tmp_path / "ens" / "ensemble.pt").is_file() and (tmp_path / "ens" / "report.md").is_file()


def test_a_local_storage_folder_needs_to_be_shared_on_several_nodes():
    cluster_checks.check_storage("/data/runs", nodes=1, shared=False)
    cluster_checks.check_storage("/mnt/nfs/runs", nodes=3, shared=True)
    cluster_checks.check_storage("s3://bucket/runs", nodes=3, shared=False)
    with pytest.raises(UserError, match=r"--storage /data/runs is a folder on this machine, but the cluster's 3 "
                                        r"nodes .* add --storage-shared, or a bucket URI"):
        cluster_checks.check_storage("/data/runs", nodes=3, shared=False)


def test_ship_code_needs_a_cluster(tmp_path, capsys):
    assert main(["run", "simple_cnn", "--data", "synthetic", "--storage", str(tmp_path), "--ship-code"]) == 2
    assert "--ship-code sends this checkout to a cluster's nodes: add --address" in capsys.readouterr().err


def test_code_on_every_node_is_compared_with_the_drivers():
    mine = {"fer_search": ("aaaa", "/home/me/fer_search/fer_search"), "search_spaces": ("bbbb", "/home/me/s")}
    same, missing, other, mute = (cluster_checks.Node(f"{n}" * 56, f"10.0.0.{n}", 4, 0) for n in range(1, 5))
    cluster_checks.check_code(mine, {same: dict(mine)})
    with pytest.raises(UserError) as refused:
        cluster_checks.check_code(mine, {
            same: dict(mine), missing: {"fer_search": None, "search_spaces": mine["search_spaces"]},
            other: {**mine, "fer_search": ("cccc", "/opt/old/fer_search")}, mute: "GetTimeoutError"})
    assert str(refused.value) == (
        "3 of 4 node(s) would not run this checkout's code (/home/me/fer_search/fer_search): 10.0.0.2 (22222222): no "
        "fer_search; 10.0.0.3 (33333333): another fer_search (/opt/old/fer_search); 10.0.0.4 (44444444): could not be "
        "asked (GetTimeoutError); pass --ship-code to send it with the search, or install the same checkout on every "
        "node")
