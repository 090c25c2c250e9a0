"""Framing between the backend and its zygote and workers: a 4-byte big-endian length, then one
pickled message of ``messages``. Both ends are our own processes, started by the same user, on a
private socket."""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 31


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def send(sock: socket.socket, message: object) -> None:
    sock.sendall(encode(message))


class Receiver:
    """Frames from a blocking socket, read in large chunks: one ``recv`` usually brings a whole
    message (often more), where reading the header and then the body costs two system calls."""

    def __init__(self, sock: socket.socket, chunk: int = 1 << 18) -> None:
        self.sock = sock
        self.chunk = chunk
        self._buffer = bytearray()

    def _fill(self, n: int) -> bool:
        """Make the buffer hold at least ``n`` bytes; False at end of stream."""
        while len(self._buffer) < n:
            data = self.sock.recv(max(self.chunk, n - len(self._buffer)))
            if not data:
                return False
            self._buffer += data
        return True

    def recv(self) -> object | None:
        """The next message, or None when the other end closed the socket."""
        if not self._fill(HEADER.size):
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        if not self._fill(HEADER.size + size):
            return None
        view = memoryview(self._buffer)
        try:
            message: object = pickle.loads(view[HEADER.size : HEADER.size + size])
        finally:
            view.release()
        del self._buffer[: HEADER.size + size]
        return message


def recv(sock: socket.socket) -> object | None:
    """The next message, read without a buffer (the zygote's: nothing is left unread when it forks);
    None when the other end closed the socket."""
    head = _recv_exact(sock, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    body = _recv_exact(sock, size)
    if body is None:
        return None
    message: object = pickle.loads(body)
    return message


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


async def read(reader: asyncio.StreamReader) -> object | None:
    """The next message from an asyncio stream, or None at end of stream."""
    try:
        head = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message: object = pickle.loads(body)
    return message
