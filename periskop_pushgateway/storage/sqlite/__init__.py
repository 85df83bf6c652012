"""What SQLite needs to serve several gunicorn workers on one file: a write lock writers queue
on, a flush of the WAL once the lock is released (so FULL durability costs no lock time), and
a cheap way to tell whether anything was committed since a moment (the database stamp)."""
