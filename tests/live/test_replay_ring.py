"""The replay ring keeps failures apart, so that traffic does not push them out."""

from __future__ import annotations

from ts_notebook.backend.replay import RequestRing, keepable
from ts_notebook.records import ServedRequest


def _record(rid: str, status: int, row: dict[str, object], cut: bool = False) -> ServedRequest:
    return ServedRequest(
        rid, "m", "1.0", 0.0, "POST", "/predictions/m", status, 0.001, 0.0, batch_id=hash(rid), row=row,
        headers={}, body=b"", truncated=cut,
    )  # fmt: skip


def _add(ring: RequestRing, rid: str, status: int, body: bytes = b"x") -> None:
    row, cut = keepable({"body": body}, ring.body_bytes)
    ring.add(_record(rid, status, dict(row), cut))


def test_failures_outlive_a_full_ring_of_successes() -> None:
    ring = RequestRing(count=3)
    _add(ring, "bad", 503)
    for i in range(10):
        _add(ring, f"ok{i}", 200)
    assert [r.request_id for r in ring.summaries("m")] == ["ok7", "ok8", "ok9"]
    assert [r.request_id for r in ring.summaries("m", failed=True)] == ["bad"]
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
    assert record is not None and record.truncated is True
    assert record.row == {"body": b"0123"}


def test_a_row_within_the_cap_is_kept_as_it_is_not_copied() -> None:
    row = {"body": b"0123", "n": 3}
    kept, cut = keepable(row, 4)
    assert kept is row and cut is False
    kept, cut = keepable(row, 3)
    assert kept == {"body": b"012", "n": 3} and cut is True and row["body"] == b"0123"
