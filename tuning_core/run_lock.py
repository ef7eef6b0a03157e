"""One run per output_dir: a second run writing the same folder stops with one line (exit 2).

The lock is an flock on output_dir/.tuning_core.lock, held for the run's lifetime and removed at
its end. The kernel drops the flock when the process dies however it dies, so a lock file left by
a killed run is simply taken over; the file's content (pid, host) only names the holder in the
error message.
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from tuning_core.errors import ConfigError

LOCK_NAME = ".tuning_core.lock"


@contextmanager
def output_dir_lock(output_dir: str, enabled: bool = True):
    """Hold the lock while the block runs; ``enabled`` False (ranks other than 0) takes none.

    The file is removed on a clean exit. Removing a locked file is safe with the inode check below:
    a process that opened the file just before it was unlinked sees a different inode and retries.
    """
    if not enabled:
        yield None
        return
    path = Path(output_dir) / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"--output_dir {output_dir} is in use by another run ({holder}); wait for it to "
                f"finish or choose another --output_dir"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)  # closing releases the flock
