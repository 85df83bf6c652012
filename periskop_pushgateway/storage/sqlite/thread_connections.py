"""Each thread's own SQLAlchemy Connection for writes, checked out of the pool once."""

import threading

from sqlalchemy import Connection, Engine

from .process_local import ProcessLocal


class ThreadConnections:
    """Each thread's own Connection of an engine, checked out of its pool once rather than for
    every write (which took a small write's transaction almost twice as long). A gthread
    worker holds one per thread, beside the pool's others for reads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()

    def _slot(self) -> ProcessLocal:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = ProcessLocal(self._engine.connect)
        return slot

    def __call__(self) -> Connection:
        return self._slot().get()

    def close(self) -> None:
        """Close the calling thread's Connection (a new one is made when next needed)."""
        connection = self._slot().release()
        if connection is not None:
            connection.close()
