"""Where a search's files live: a local folder or any URI that pyarrow opens (s3://, gs://, file://, ...).

`StoragePath` is a small pathlib-like view of one path on a `pyarrow.fs` filesystem, the layer Ray itself
stores experiments through. The search writes, and `layout`, `record`, `leaderboard` and `ensemble` read,
every experiment file through it, so a bucket behaves like a local folder. Ray-free.
"""
from __future__ import annotations

import fnmatch
import io
import os
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow.fs as pafs

from fer_search.errors import UserError


def is_uri(location: str | os.PathLike) -> bool:
    """Whether a storage location is a URI (s3://, gs://, file://, ...) rather than a path on this machine: the
    one test of a remote --storage."""
    return "://" in str(location)


def _filesystem_from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's resolution of a URI (its query, e.g. ?endpoint_override=..., configures the filesystem)."""
    try:
        return pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:  # an unknown scheme, a bucket that cannot be reached, no credentials
        raise UserError(f"storage {uri.split('?')[0]}: {str(exc).strip().splitlines()[0]}") from None


class StoragePath:
    """One file or folder on a pyarrow filesystem. `str()` shows it as the user named it (a local path, or
    scheme://bucket/key); a local one is also os.PathLike, so numpy, pandas and torch open it directly."""

    def __init__(self, filesystem: pafs.FileSystem, path: str, scheme: str = ""):
        self.fs = filesystem
        self.path = path.rstrip("/") or "/"
        self.scheme = scheme  # "s3", "gs", ...; "" for the local filesystem

    @classmethod
    def of(cls, location: str | os.PathLike | StoragePath) -> StoragePath:
        """A local path (made absolute) or a URI."""
        if isinstance(location, StoragePath):
            return location
        text = str(location)
        if not is_uri(text):
            return cls(pafs.LocalFileSystem(), str(Path(text).expanduser().absolute()))
        filesystem, path = _filesystem_from_uri(text)
        local = isinstance(filesystem, pafs.LocalFileSystem)
        return cls(filesystem, path, "" if local else text.split("://", 1)[0])

    # -- names
    def __truediv__(self, name: str) -> StoragePath:
        return StoragePath(self.fs, f"{self.path.rstrip('/')}/{name}", self.scheme)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> StoragePath:
        head = self.path.rsplit("/", 1)[0]
        return StoragePath(self.fs, head or "/", self.scheme)

    @property
    def local_path(self) -> Path | None:
        """The path on this machine, for a local filesystem; None for a bucket."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def __fspath__(self) -> str:
        if self.local_path is None:
            raise TypeError(f"{self} is not a local file; read it with read_bytes()")
        return self.path

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    def __repr__(self) -> str:
        return f"StoragePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StoragePath) and (self.fs.type_name, str(self)) == (other.fs.type_name, str(other))

    def __hash__(self) -> int:
        return hash((self.fs.type_name, str(self)))

    def __lt__(self, other: StoragePath) -> bool:
        return self.path < other.path

    # -- what is there
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def mtime(self) -> float:
        """Seconds since the epoch of the last change (0 where the store keeps none, e.g. a bucket's folders)."""
        found = self._info().mtime
        return found.timestamp() if found is not None else 0.0

    def iterdir(self) -> Iterator[StoragePath]:
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        for info in self.fs.get_file_info(selector):
            yield StoragePath(self.fs, info.path, self.scheme)

    def glob(self, pattern: str) -> list[StoragePath]:
        """The paths below this one matching `pattern`, a "/"-separated list of fnmatch patterns ("*/params.json")."""
        found = [self]
        for part in pattern.split("/"):
            if any(c in part for c in "*?["):
                found = [child for parent in found if parent.is_dir() for child in parent.iterdir()
                         if fnmatch.fnmatchcase(child.name, part)]
            else:
                candidates = [parent / part for parent in found]
                infos = self.fs.get_file_info([c.path for c in candidates]) if candidates else []
                found = [c for c, info in zip(candidates, infos) if info.type != pafs.FileType.NotFound]
        return sorted(found)

    # -- contents
    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as stream:
                return stream.readall()
        except FileNotFoundError:
            raise
        except OSError as exc:  # stores differ in how they say "no such key"
            if not self.exists():
                raise FileNotFoundError(f"{self}: no such file") from exc
            raise

    def read_text(self, errors: str = "strict") -> str:
        return self.read_bytes().decode("utf-8", errors=errors)

    def open_bytes(self) -> io.BytesIO:
        """The file's contents as a seekable file object (numpy, pandas and torch read those)."""
        return io.BytesIO(self.read_bytes())

    def write_bytes(self, data: bytes) -> None:
        """Write the file whole. A local file is written beside and renamed into place, so a reader (or a process
        killed mid-write) never sees half of it; an object store's upload is whole or absent by itself."""
        self.fs.create_dir(self.parent.path, recursive=True)
        if self.local_path is None:
            with self.fs.open_output_stream(self.path) as stream:
                stream.write(data)
            return
        partial = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(partial) as stream:
            stream.write(data)
        self.fs.move(partial, self.path)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def delete_dir(self) -> None:
        self.fs.delete_dir(self.path)


def experiment_path(storage: str | os.PathLike | StoragePath, name: str) -> StoragePath:
    """Experiment `name` under a storage folder or URI (a URI's query stays with the filesystem, not the name)."""
    return StoragePath.of(storage) / name
