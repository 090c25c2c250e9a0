"""The replay ring keeps failures apart, so that traffic does not push them out."""

from __future__ import annotations

from ts_notebook.backend.replay import RequestRing


def _add(ring: RequestRing, rid: str, status: int, body: bytes = b"x") -> None:
    ring.add("m", {"id": rid, "status": status, "batch_id": rid, "stages_ms": {"latency": 1.0}}, {"body": body}, {})


def test_failures_outlive_a_full_ring_of_successes() -> None:
    ring = RequestRing(count=3)
    _add(ring, "bad", 503)
    for i in range(10):
        _add(ring, f"ok{i}", 200)
    assert [r["id"] for r in ring.summaries("m")] == ["ok7", "ok8", "ok9"]
    assert [r["id"] for r in ring.summaries("m", failed=True)] == ["bad"]
    assert ring.get("bad") is not None and ring.get("ok0") is None
    for i in range(3):
        _add(ring, f"bad{i}", 500)
    assert ring.get("bad") is None  # pushed out of the failed ring by newer failures
    ring.forget("m")
    assert ring.summaries() == [] and ring.get("bad2") is None


def test_long_bodies_are_kept_cut_and_say_so() -> None:
    ring = RequestRing(count=2, body_bytes=4)
    _add(ring, "long", 200, b"0123456789")
    record = ring.get("long")
    assert record is not None and record["truncated"] is True
    assert record["row"] == {"body": {"__bytes__": "MDEyMw=="}}  # b"0123"
