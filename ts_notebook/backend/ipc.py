"""The backend's private sockets: who may connect to them, and how they are made.

The worker and zygote sockets carry pickles, and unpickling runs code. So each connection must
first send this backend's secret (32 random bytes, raw, before any frame); the backend compares it
in constant time and closes the connection unread when it does not match. The secret reaches the
zygote on its stdin (never on a command line or in the environment) and the workers by fork. The
sockets are made 0600 in the 0700 run folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

SECRET_BYTES = 32
HELLO_TIMEOUT = 5.0  # seconds a new connection has to prove itself


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)


def private_folder(path: Path) -> Path:
    """``path`` as a folder only this user can enter (made, or its mode corrected)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def records_dir() -> Path:
    """The per-user folder holding every backend's run folder (never a world-writable one)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "ts_notebook" if runtime else Path.home() / ".cache" / "ts_notebook" / "run"
    return private_folder(base)


def listen(path: str, backlog: int = 64) -> socket.socket:
    """A Unix socket listening at ``path``, mode 0600 from the moment it exists."""
    Path(path).unlink(missing_ok=True)  # left by a backend that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _private_umask():
        sock.bind(path)
    Path(path).chmod(0o600)
    sock.listen(backlog)
    return sock


def connect(path: str, secret: bytes) -> socket.socket:
    """Connect to a backend socket and prove who we are (a worker or the zygote)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(secret)
    return sock


async def admitted(reader: asyncio.StreamReader, secret: bytes) -> bool:
    """Whether the peer sent ``secret`` first, within HELLO_TIMEOUT; nothing else is read before."""
    try:
        proof = await asyncio.wait_for(reader.readexactly(len(secret)), HELLO_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        return False
    return hmac.compare_digest(proof, secret)
