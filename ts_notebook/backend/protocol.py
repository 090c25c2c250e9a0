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


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv(sock: socket.socket) -> object | None:
    """The next message, or None when the other end closed the socket."""
    head = _recv_exact(sock, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    body = _recv_exact(sock, size)
    if body is None:
        return None
    message: object = pickle.loads(body)
    return message


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
