"""Rendered exports kept as files in one directory that a gateway's workers share, so that a
scrape of an unchanged group only sends a file, read in pieces: it never sits whole in a
worker's memory, and each change of a group is rendered and compressed once
for all workers, not once in each. At most a number of bytes of them, the least recently
scraped removed first; each form of an export (plain, gzip) is a file of its own.

A file's name holds the group's version (id, creation time, revision): a file is only ever
read for the very version it was rendered from. When the directory cannot be written (a full
disk), scrapes are still answered, rendered each time, and the failure is logged.
"""

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from io import BufferedReader
from pathlib import Path
from typing import Any, Self

from ..temporary_directory import own_temporary_directory

log = logging.getLogger(__name__)

_SUFFIXES = {None: "json", "gzip": "json.gz"}
_WRITING = ".writing-"  # a file being written: never read, removed when left by a crash
# A temporary directory's name holds the pid of the process that made it and removes it at exit.
_TEMPORARY_PREFIX = "periskop-pushgateway-exports-"


class ExportFileCache:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """In the directory EXPORT_CACHE_DIR names, emptied (its files may be of another
        database's groups), or in a new temporary one removed when this process exits."""
        configured = config["EXPORT_CACHE_DIR"]
        if configured:
            directory = Path(configured)
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.iterdir():
                stale.unlink(missing_ok=True)
        else:
            directory = own_temporary_directory(_TEMPORARY_PREFIX)
        return cls(directory, config["EXPORT_CACHE_BYTES"])

    def open(
        self, group_name: str, version: tuple[int, ...], encoding: str | None = None
    ) -> BufferedReader | None:
        """The export of this version of the group in this encoding as an open binary file,
        or None when none is kept."""
        try:
            file = open(self._path(group_name, version, encoding), "rb")  # noqa: SIM115
        except FileNotFoundError:
            return None
        try:
            os.utime(file.fileno())  # scraped now: the least recently scraped go first
        except OSError:
            pass  # only the order of removal suffers
        return file

    def put(
        self, group_name: str, version: tuple[int, ...], body: bytes, encoding: str | None = None
    ) -> None:
        """Keep body as the export of this version of the group in this encoding."""
        if len(body) > self.max_bytes:
            return  # larger than all of it: rendered for every scrape
        path = self._path(group_name, version, encoding)
        try:
            descriptor, writing = tempfile.mkstemp(dir=self.directory, prefix=_WRITING)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(body)
                # Atomic: a reader opens the whole file or none.
                os.replace(writing, path)
            except BaseException:
                os.unlink(writing)
                raise
            self._remove_all_but(path)
        except OSError as error:
            log.warning("export of group %r not kept in %s: %s", group_name, self.directory, error)

    def size(self) -> int:
        """Bytes of the exports kept."""
        return sum(size for _path, _parts, size, _used in self._files())

    def _path(self, group_name: str, version: tuple[int, ...], encoding: str | None) -> Path:
        group = hashlib.blake2b(group_name.encode(), digest_size=12).hexdigest()
        return self.directory / f"{group}.{'.'.join(map(str, version))}.{_SUFFIXES[encoding]}"

    def _files(self) -> list[tuple[Path, tuple[str, tuple[str, str, str], str], int, int]]:
        """(path, its name's parts, size, last used) of every export kept, leaving out files
        being written and any other file."""
        files = []
        for entry in os.scandir(self.directory):
            parts = _parts(entry.name)
            if parts is None:
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue  # removed by another worker meanwhile
            files.append((Path(entry.path), parts, stat.st_size, stat.st_mtime_ns))
        return files

    def _remove_all_but(self, kept: Path) -> None:
        """Remove the other versions of kept's group in its encoding, then the least recently
        scraped exports while all of them weigh more than max_bytes."""
        group, _version, suffix = _parts(kept.name)  # type: ignore[misc]  # named by _path
        total, others = 0, []
        for path, (other_group, _version, other_suffix), size, used in self._files():
            if path == kept:
                total += size
            elif (other_group, other_suffix) == (group, suffix):
                path.unlink(missing_ok=True)
            else:
                total += size
                others.append((used, size, path))
        for _used, size, path in sorted(others):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def _parts(name: str) -> tuple[str, tuple[str, str, str], str] | None:
    """(group digest, version, suffix) of an export file's name, or None for another name."""
    if name.startswith(_WRITING) or name.count(".") < 4:
        return None
    group, id_, created, revision, suffix = name.split(".", 4)
    return group, (id_, created, revision), suffix
