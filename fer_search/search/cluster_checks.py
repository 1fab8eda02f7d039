"""Checks before a search starts on an existing Ray cluster (`run --address`); Ray-free: ray_tune.py
gathers what they look at (the live nodes, the code each one would import) and calls them.

Each one fails at once with the fix in the message, before any trial starts:
- storage: every node writes its trials' checkpoints to --storage, so on more than one node a folder
  of this machine is refused unless the user says it is shared (--storage-shared: e.g. an NFS mount
  at the same path on every node);
- node sizes: a trial's CPUs and GPU share must fit on one node, or Ray leaves it pending forever
  (a search's own one-node Ray is sized by settings.plan_resources);
- code: trials import fer_search and search_spaces on the node they run on; a node that lacks them
  fails every trial, and one with another version runs other code. `--ship-code` sends this
  checkout with the search (Ray's runtime_env `py_modules`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_search.errors import UserError
from fer_search.search.code_probe import TRIAL_PACKAGES
from fer_search.search.layout import short_node_id
from fer_search.search.storage import is_uri

if TYPE_CHECKING:
    from fer_search.search.settings import Resources


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str
    cpus: float
    gpus: float

    def __str__(self) -> str:
        return f"{self.name}: {self.cpus:g} CPU, {self.gpus:g} GPU"

    @property
    def name(self) -> str:
        return f"{self.address} ({short_node_id(self.node_id)})"


def check_storage(storage: str, nodes: int, shared: bool) -> None:
    if is_uri(storage) or shared or nodes <= 1:
        return
    raise UserError(f"--storage {storage} is a folder on this machine, but the cluster's {nodes} nodes all write trial "
                    "checkpoints there: use a shared file system mounted at that path on every node and add "
                    "--storage-shared, or a bucket URI (s3://..., gs://...)")


def check_fits_a_node(resources: Resources, nodes: list[Node]) -> None:
    """A trial runs on one node: refuse a request (its CPUs and GPU share, per family) that none of `nodes` can hold."""
    for family, gpus in resources.gpus_per_trial.items():
        if any(node.cpus >= resources.cpus_per_trial and node.gpus >= gpus - 1e-9 for node in nodes):
            continue
        raise UserError(f"no node can hold a {family} trial ({resources.cpus_per_trial:g} CPU, {gpus:g} GPU); the nodes "
                        f"have: {'; '.join(map(str, nodes))}. Lower --cpus-per-trial or --gpus-per-trial, or add a "
                        "bigger node")


def check_code(driver: dict, on_nodes: dict[Node, dict | str]) -> None:
    """`driver`: this process's installed_code(); `on_nodes`: each node's, or why it could not be asked."""
    problems = {}
    for node, found in on_nodes.items():
        if isinstance(found, str):
            problems[node] = [f"could not be asked ({found})"]
            continue
        missing = [f"no {package}" for package in driver if found.get(package) is None]
        other = [f"another {package} ({found[package][1]})" for package in driver
                 if found.get(package) is not None and found[package][0] != driver[package][0]]
        if missing or other:
            problems[node] = missing + other
    if problems:
        listed = "; ".join(f"{node.name}: {', '.join(what)}" for node, what in problems.items())
        raise UserError(f"{len(problems)} of {len(on_nodes)} node(s) would not run this checkout's code "
                        f"({driver['fer_search'][1]}): {listed}; pass --ship-code to send it with the search, or "
                        "install the same checkout on every node")


def shipped_code() -> dict:
    """The runtime_env that sends this checkout's trial packages to every node (ahead of what a node has)."""
    folders = [next(iter(importlib.util.find_spec(package).submodule_search_locations)) for package in TRIAL_PACKAGES]
    return {"py_modules": folders, "excludes": ["__pycache__"]}
