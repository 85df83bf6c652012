"""A commit made durable after the write lock is released, not while it is held.

With SQLite's synchronous=FULL each commit waits for the flush of the WAL file while it
holds the database's one write lock, so every other worker's write waits for that disk
flush too. The gateway keeps the promise FULL makes, that an acknowledged push is on disk,
in another way: it commits under NORMAL (which writes the commit to the WAL file without
waiting for the disk), releases the lock, and only then flushes the WAL file itself and
answers. The next writer works meanwhile, and the flushes of several workers overlap: on a
slow disk (bench/slow_flush.c) that doubles the rate of pushes that write.

Why a flush of the WAL file after the commit covers the commit: the commit's frames were
written to the file before COMMIT returned. If a checkpoint has since copied them into the
database file, that checkpoint flushed the WAL before copying and the database after (what
NORMAL does at every checkpoint), so they are on disk either way, even if the WAL file has
since been started over or truncated. It is never deleted nor replaced while this process has
it open: a file missing, or not the one the process opened, is refused (wal_guard.py). A WAL
file newly created has its directory entry flushed as well, once per file, as SQLite does for
FULL.

What SQLite's FULL does and this does not: between the commit and the flush, readers see a
push that is not yet on disk (a scrape in that moment, then a power cut, and the Periskop
server has counted a push the gateway no longer holds; the client was never answered), and
a flush that fails leaves its push committed (the answer is a 503 all the same).
"""

import os
import threading

from sqlalchemy.exc import OperationalError

from .wal_guard import WalGuard, wal_gone

# What becomes of the commits the file held, when a flush finds it gone (wal_guard.py).
_NEXT_SALVAGES = "the next transaction copies what it held into the database file"


class WalSync:
    def __init__(self, wal_guard: WalGuard) -> None:
        # The WAL file this process's connections opened: the one whose flush covers them.
        self.wal_guard = wal_guard
        # Told by each new connection (database_opened): SQLite follows symbolic links in
        # the configured path, and puts the WAL file beside the file it opened.
        self.wal_path: str | None = None
        self.directory: str | None = None
        # (device, inode) of the WAL whose directory entry is on disk. Threads racing here
        # at most flush the directory once more.
        self._synced_file: tuple[int, int] | None = None
        # Commits this process made, and how many of them the last flush covered: a flush
        # started after a commit covers it, so a thread (or a held answer of the sync worker,
        # see flush_later.py) whose commit an earlier flush covered skips its own.
        self._committed = 0
        self._flushed = 0
        self._flushing = threading.Lock()

    def committed(self) -> None:
        """Told after each commit, while the write lock still serializes this process's
        writers."""
        self._committed += 1

    def unflushed(self) -> bool:
        """Whether a commit of this process is not yet known to be on disk."""
        return self._flushed < self._committed

    def flush_commits(self) -> None:
        """Make every commit this process made so far durable (see __call__), unless a flush
        that started after the last of them already did."""
        ticket = self._committed
        if self._flushed >= ticket:
            return
        with self._flushing:
            if self._flushed >= ticket:
                return  # flushed by the thread this one waited for
            covered = self._committed
            self()
            self._flushed = max(self._flushed, covered)

    def database_opened(self, database_file: str) -> None:
        """A connection opened database_file (its full path, as PRAGMA database_list says)."""
        self.wal_path = f"{database_file}-wal"
        self.directory = os.path.dirname(database_file)

    def __call__(self) -> None:
        """Flush what was committed to the WAL file so far. When the disk does not take it,
        the commit may be lost: OperationalError, as for a database that fails (a 503, and
        the client pushes again)."""
        try:
            self._sync()
        except OSError as error:
            raise OperationalError("flush the WAL file", None, error) from error

    def _sync(self) -> None:
        if self.wal_path is None:
            return  # no connection was ever opened: nothing was committed
        opened = self.wal_guard.opened_file()
        try:
            fd = os.open(self.wal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if opened is None:
                return  # every connection closed: SQLite checkpointed and removed the file
            # SQLite removes it only when its last connection closes, and this process's
            # are open: deleted under the gateway, with the commits it held.
            raise wal_gone(self.wal_path, _NEXT_SALVAGES) from None
        try:
            stat = os.fstat(fd)
            identity = (stat.st_dev, stat.st_ino)
            if opened is not None and identity != opened:
                raise wal_gone(self.wal_path, _NEXT_SALVAGES)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        if identity != self._synced_file:
            self._sync_directory()
            self._synced_file = identity

    def _sync_directory(self) -> None:
        assert self.directory is not None  # told with wal_path, before any commit
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class NoSync:
    """The commit itself is durable (or, under NORMAL, is not meant to be): nothing to flush."""

    def __call__(self) -> None:
        pass

    def committed(self) -> None:
        pass

    def unflushed(self) -> bool:
        return False

    def flush_commits(self) -> None:
        pass


NO_SYNC = NoSync()
