"""The worker socket's framing: the buffered reader returns every message whole, however the bytes
arrive (several frames in one read, a frame split across reads), and None at end of stream."""

from __future__ import annotations

import itertools
import socket
import threading

from ts_notebook.backend import protocol
from ts_notebook.backend.messages import Predict, WireRequest


def test_frames_come_back_whole_however_the_bytes_are_cut() -> None:
    ours, theirs = socket.socketpair()
    messages = [Predict(i, [WireRequest(f"r{i}", {"body": b"x" * (i * 40000)}, {"h": "v"})]) for i in range(6)]
    data = b"".join(protocol.encode(m) for m in messages)

    def send() -> None:
        cuts = [0, 3, 5, 70000, 70001, len(data) // 2, len(data)]  # a header split, a body split, many frames
        for a, b in itertools.pairwise(cuts):
            theirs.sendall(data[a:b])
        theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    receiver = protocol.Receiver(ours, chunk=1 << 16)
    got = [receiver.recv() for _ in messages]
    assert got == messages
    assert receiver.recv() is None  # the other end closed
    sender.join()
    ours.close()
