"""Which fer_search a Python process would import: asked on every node of a cluster before a search.

Standard library only, imported inside the function: ray_tune.py sends this module's function by
value (not as a reference to fer_search), because it must also run on a node where fer_search is
missing or is another version.
"""
from __future__ import annotations

# The packages a trial imports on the node it runs on (search_spaces: the sampler's spaces).
TRIAL_PACKAGES = ("fer_search", "search_spaces")


def installed_code(packages: tuple[str, ...] = TRIAL_PACKAGES) -> dict[str, tuple[str, str] | None]:
    """Per package: (digest of its .py files, its folder), or None where this process cannot import it.
    Found without importing it, so a broken copy is reported too."""
    import hashlib
    import importlib.util
    from pathlib import Path

    found = {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            found[package] = None
            continue
        folder = Path(next(iter(spec.submodule_search_locations)))
        digest = hashlib.sha256()
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        found[package] = (digest.hexdigest()[:12], str(folder))
    return found
