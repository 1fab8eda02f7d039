"""The project's declared dependencies: every third-party module the code imports is declared."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("fer_search", "search_spaces", "analysis")


def _imported_modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {_normalized(re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0]) for r in requirements}
    distributions = packages_distributions()
    undeclared = {module: distributions.get(module, [module]) for module in _imported_modules()
                  if not declared & {_normalized(d) for d in distributions.get(module, [module])}}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
