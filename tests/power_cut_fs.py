"""A FUSE filesystem that forgets, at a power cut, everything that was not flushed.

`python tests/power_cut_fs.py BACKING MOUNTPOINT` mounts it in the foreground. Reads and writes
work on the process's memory: written bytes reach BACKING only at fsync/fdatasync of their file,
and a directory's entries (files created, removed, renamed in it) only at fsync of the directory,
which is what POSIX promises and SQLite relies on (it flushes the directory after creating a
journal or WAL file). BACKING holds the disk: manifest.json (the directories' flushed entries)
and data/<inode> (each file's flushed bytes).

The power cut is `kill -9` of this process: whatever it held in memory is gone, and mounting
BACKING again shows the disk as the last flushes left it. A file created and never listed by a
flushed directory disappears; one removed whose removal was not flushed comes back with its
flushed content. A clean stop is `fusermount -u MOUNTPOINT` (or `umount`).

It serves one process's requests at a time (no threads), so it needs no locks of its own. File
locks (flock, POSIX locks) are left to the kernel, which keeps them for one machine.
"""

import errno
import json
import os
import stat
import sys
import time
from pathlib import Path

from fuse import FUSE, FuseOSError, Operations

PAGE = 4096
ROOT = 1


class Node:
    """An inode: a directory's entries (live and flushed), or a file's bytes (live, and which
    pages of them differ from its flushed bytes in BACKING)."""

    def __init__(self, ident: int, mode: int, data: bytearray | None = None) -> None:
        self.ident = ident
        self.mode = mode
        self.entries: dict[str, int] = {}  # directories: name -> inode, as they are now
        self.flushed_entries: dict[str, int] = {}  # ... and as the last fsync left them
        self.data = data if data is not None else bytearray()  # files: their bytes now
        self.dirty: set[int] = set()  # pages written since the last fsync
        self.shortest = len(self.data)  # the shortest the file was since the last fsync
        self.mtime_ns = self.ctime_ns = self.atime_ns = time.time_ns()

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class PowerCutFs(Operations):
    use_ns = True

    def __init__(self, backing: Path) -> None:
        self.backing = backing
        self.data_dir = backing / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes: dict[int, Node] = {}
        self.handles: dict[int, Node] = {}
        self.next_handle = 1
        self._load()

    # The disk.

    def _load(self) -> None:
        """The nodes the flushed directories reach; every other flushed file is dropped."""
        manifest_path = self.backing / "manifest.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
        else:
            manifest = {"nodes": {str(ROOT): {"mode": stat.S_IFDIR | 0o755, "entries": {}}}}
        for ident_text, saved in manifest["nodes"].items():
            ident = int(ident_text)
            if stat.S_ISDIR(saved["mode"]):
                node = Node(ident, saved["mode"])
                node.entries = dict(saved["entries"])
                node.flushed_entries = dict(saved["entries"])
            else:
                node = Node(ident, saved["mode"], bytearray(self._flushed_bytes(ident)))
            self.nodes[ident] = node
        on_disk = [int(path.name) for path in self.data_dir.iterdir()]
        self.next_inode = max([ROOT, *self.nodes, *on_disk]) + 1
        for ident in on_disk:
            if ident not in self.nodes:
                (self.data_dir / str(ident)).unlink()

    def _flushed_bytes(self, ident: int) -> bytes:
        try:
            return (self.data_dir / str(ident)).read_bytes()
        except FileNotFoundError:
            return b""  # listed by a flushed directory, its content never flushed

    def _flush_file(self, node: Node) -> None:
        fd = os.open(self.data_dir / str(node.ident), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Cut to the shortest it was since the last flush first: bytes it dropped and
            # then grew again over are zeros, not what was flushed before.
            os.ftruncate(fd, min(node.shortest, os.fstat(fd).st_size))
            for page in sorted(node.dirty):
                start = page * PAGE
                if start < len(node.data):
                    os.pwrite(fd, node.data[start : start + PAGE], start)
            os.ftruncate(fd, len(node.data))
        finally:
            os.close(fd)
        node.dirty.clear()
        node.shortest = len(node.data)

    def _write_manifest(self) -> None:
        """Every node the flushed directories reach, from the root: what a mount finds."""
        saved: dict[str, dict] = {}
        waiting = [ROOT]
        while waiting:
            node = self.nodes[waiting.pop()]
            if str(node.ident) in saved:
                continue
            saved[str(node.ident)] = {"mode": node.mode, "entries": dict(node.flushed_entries)}
            waiting.extend(node.flushed_entries.values())
        temporary = self.backing / "manifest.json.new"
        temporary.write_text(json.dumps({"nodes": saved}))
        os.replace(temporary, self.backing / "manifest.json")

    # Paths and handles.

    def _lookup(self, path: str) -> Node:
        node = self.nodes[ROOT]
        for name in filter(None, path.split("/")):
            if not node.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            if name not in node.entries:
                raise FuseOSError(errno.ENOENT)
            node = self.nodes[node.entries[name]]
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        folder, name = os.path.split(path)
        parent = self._lookup(folder)
        if not parent.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        return parent, name

    def _node(self, path: str | None, fh: int | None) -> Node:
        """The open file's node when there is a handle (its name may be gone), else path's."""
        if fh:
            return self.handles[fh]
        assert path is not None
        return self._lookup(path)

    def _handle(self, node: Node) -> int:
        fh = self.next_handle
        self.next_handle += 1
        self.handles[fh] = node
        return fh

    def _new_node(self, path: str, mode: int) -> Node:
        parent, name = self._parent(path)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        node = Node(self.next_inode, mode)
        self.next_inode += 1
        self.nodes[node.ident] = node
        parent.entries[name] = node.ident
        parent.mtime_ns = time.time_ns()
        return node

    # The operations.

    def getattr(self, path: str | None, fh: int | None = None) -> dict:
        node = self._node(path, fh)
        size = 4096 if node.is_dir else len(node.data)
        return {
            "st_mode": node.mode,
            "st_ino": node.ident,
            "st_nlink": 2 if node.is_dir else 1,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_atime": node.atime_ns,
            "st_mtime": node.mtime_ns,
            "st_ctime": node.ctime_ns,
        }

    def access(self, path: str, amode: int) -> int:
        self._lookup(path)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        node = self._lookup(path)
        node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        node = self._lookup(path)
        node.atime_ns, node.mtime_ns = times or (time.time_ns(), time.time_ns())
        return 0

    def statfs(self, path: str) -> dict:
        blocks = 1 << 24
        return {
            "f_bsize": PAGE,
            "f_frsize": PAGE,
            "f_blocks": blocks,
            "f_bfree": blocks,
            "f_bavail": blocks,
            "f_files": 1 << 20,
            "f_ffree": 1 << 20,
            "f_namemax": 255,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self._lookup(path).entries]

    def mkdir(self, path: str, mode: int) -> int:
        self._new_node(path, stat.S_IFDIR | stat.S_IMODE(mode))
        return 0

    def rmdir(self, path: str) -> int:
        parent, name = self._parent(path)
        if self._lookup(path).entries:
            raise FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]
        return 0

    def create(self, path: str, mode: int, fi: object = None) -> int:
        return self._handle(self._new_node(path, stat.S_IFREG | stat.S_IMODE(mode)))

    def open(self, path: str, flags: int) -> int:
        node = self._lookup(path)
        if node.is_dir:
            raise FuseOSError(errno.EISDIR)
        return self._handle(node)

    def release(self, path: str | None, fh: int) -> int:
        self.handles.pop(fh, None)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        node = self._node(path, fh)
        node.atime_ns = time.time_ns()
        return bytes(node.data[offset : offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        node = self._node(path, fh)
        if offset > len(node.data):
            self._mark(node, len(node.data), offset)
            node.data.extend(bytes(offset - len(node.data)))
        node.data[offset : offset + len(data)] = data
        self._mark(node, offset, offset + len(data))
        node.mtime_ns = time.time_ns()
        return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        node = self._node(path, fh)
        if length < len(node.data):
            del node.data[length:]
            node.shortest = min(node.shortest, length)
        else:
            self._mark(node, len(node.data), length)
            node.data.extend(bytes(length - len(node.data)))
        node.mtime_ns = time.time_ns()
        return 0

    @staticmethod
    def _mark(node: Node, start: int, end: int) -> None:
        node.dirty.update(range(start // PAGE, (end + PAGE - 1) // PAGE))

    def unlink(self, path: str) -> int:
        parent, name = self._parent(path)
        if name not in parent.entries:
            raise FuseOSError(errno.ENOENT)
        if self.nodes[parent.entries[name]].is_dir:
            raise FuseOSError(errno.EISDIR)
        del parent.entries[name]
        parent.mtime_ns = time.time_ns()
        return 0

    def rename(self, old: str, new: str) -> int:
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        if old_name not in old_parent.entries:
            raise FuseOSError(errno.ENOENT)
        new_parent.entries[new_name] = old_parent.entries.pop(old_name)
        return 0

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        node = self._node(path, fh)
        if node.is_dir:
            return self.fsyncdir(path, datasync, fh)
        self._flush_file(node)
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        assert path is not None
        node = self._lookup(path)
        node.flushed_entries = dict(node.entries)
        # A file listed now is on the disk with the bytes its own fsync flushed, if any.
        self._write_manifest()
        return 0


def main() -> None:
    backing, mountpoint = Path(sys.argv[1]), sys.argv[2]
    FUSE(
        PowerCutFs(backing),
        mountpoint,
        foreground=True,
        nothreads=True,
        # st_ino is the node's: SQLite and the gateway tell files apart by (device, inode).
        use_ino=True,
        # An open file that is removed keeps its node, reached through its handle.
        hard_remove=True,
        big_writes=True,
        fsname="power_cut_fs",
    )


if __name__ == "__main__":
    main()
