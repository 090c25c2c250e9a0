"""The backend's end of one worker connection, as an asyncio protocol.

Every answer of every request crosses this socket, so it is read with callbacks rather than a
stream reader and a task: a frame that arrives is unpickled and handed on inside ``data_received``
(a Result resolves its batch's future there), which saves a task wake-up and two ``readexactly``
calls per message. Nothing is unpickled before the peer has proved it is one of this backend's
own processes (``ipc``'s secret, first on the wire, within ``HELLO_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import hmac
import pickle
from collections.abc import Callable
from typing import cast

from ts_notebook.backend import protocol
from ts_notebook.backend.ipc import HELLO_TIMEOUT


class Link(asyncio.Protocol):
    """Admits the peer, then turns the byte stream into messages for ``on_message``.

    ``on_message(link, message)`` gets every message in order (the first is the worker's Hello);
    ``on_closed(link)`` runs once when the connection ends; ``on_refused()`` when a peer fails the
    secret. ``peer`` is whatever the owner attaches once it knows who is on the other end.
    """

    def __init__(
        self,
        secret: bytes,
        on_message: Callable[[Link, object], None],
        on_closed: Callable[[Link], None],
        on_refused: Callable[[], None],
    ) -> None:
        self._secret = secret
        self._on_message = on_message
        self._on_closed = on_closed
        self._on_refused = on_refused
        self._buffer = bytearray()
        self._admitted = False
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False  # close() was called; the transport reports connection_lost later
        self.peer: object | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, hence no isinstance check).
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(HELLO_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        if not self._admitted:
            self.close()

    def data_received(self, data: bytes) -> None:
        if self._closed:  # bytes that were in flight when the owner closed the link
            return
        self._buffer += data
        if not self._admitted and not self._admit():
            return
        buffer, header, start = self._buffer, protocol.HEADER, 0
        while len(buffer) - start >= header.size:
            (size,) = header.unpack_from(buffer, start)
            end = start + header.size + size
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:
                message: object = pickle.loads(view[start + header.size : end])
            start = end
            self._on_message(self, message)
            if self.closed:  # the owner closed the link on this message: read nothing more from it
                return
        del buffer[:start]

    def _admit(self) -> bool:
        """Check the secret once enough bytes are in; False while waiting for them or after a refusal."""
        if len(self._buffer) < len(self._secret):
            return False
        proof = bytes(self._buffer[: len(self._secret)])
        del self._buffer[: len(self._secret)]
        if self._timer is not None:
            self._timer.cancel()
        if not hmac.compare_digest(proof, self._secret):
            self._buffer.clear()
            self._on_refused()
            self.close()
            return False
        self._admitted = True
        return True

    def send(self, message: object) -> None:
        """Write one framed message (the transport buffers it; frames are sent in order).

        Raises:
            ConnectionError: the connection is closed.
        """
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the worker's connection is closed")
        self._transport.write(protocol.encode(message))

    @property
    def closed(self) -> bool:
        """close() was called (a property: the owner may close the link from inside ``on_message``)."""
        return self._closed

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        if self._admitted:
            self._on_closed(self)
