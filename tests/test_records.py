"""The typed records and their JSON codec: every kind survives the trip (bytes included), a summary
carries previews instead of the row, and an answer of another schema or with a wrong field says so."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ts_notebook.records import (
    SCHEMA,
    EventPage,
    Failure,
    LogLine,
    ModelTimings,
    RecordError,
    ServedRequest,
    StageTiming,
    Swap,
    VersionWorkers,
    WorkerChange,
    WorkerContext,
    WorkerView,
    preview,
)
from ts_notebook.records_json import (
    decode_as,
    from_json,
    page_from_json,
    page_to_json,
    requests_from_json,
    timings_from_json,
    timings_to_json,
    to_json,
    workers_from_json,
    workers_to_json,
)

CONTEXT = WorkerContext("/m/abc", {"gpu_id": None, "batch_size": 2}, {"model": {"handler": "h.py"}}, {"k": 1})
SERVED = ServedRequest(
    "rid-1", "tiny", "1.0", 1700000000.25, "POST", "/predictions/tiny", 503, 0.0125, 0.001, 0.0004,
    {"preprocess": 0.002, "inference": 0.005}, "9000", "gen1", 7, 2,
    Failure(503, "boom", "Traceback ...", "h.py:12"), CONTEXT,
    {"body": b"\x00\xffraw", "data": bytearray(b"ba"), "text": "t"}, {"content-type": "application/octet-stream"},
    b"\xfe\xff not utf-8", True, ("rid-0", "rid-1"),
)  # fmt: skip


def _wire(value: object) -> object:
    """Through JSON text, as the HTTP answer carries it."""
    return json.loads(json.dumps(value))


def test_a_served_request_survives_the_trip_whole_bytes_included() -> None:
    back = from_json(_wire(to_json(SERVED, full=True)))
    assert isinstance(back, ServedRequest)
    assert back.row == SERVED.row and isinstance(back.row["data"], bytearray)  # type: ignore[index]
    assert back.body == SERVED.body
    assert back.context is not None and back.context.properties() == {**CONTEXT.properties()}
    assert back.context.properties()["model_dir"] == "/m/abc"
    assert dataclasses.replace(back, context=CONTEXT) == SERVED
    assert back.stages_ms == {"queue": 1.0, "transport": 0.4, "preprocess": 2.0, "inference": 5.0, "latency": 12.5}


def test_a_summary_carries_previews_and_no_row() -> None:
    back = decode_as(_wire(to_json(SERVED)), ServedRequest)
    assert back.row is None and back.body is None and back.context is None
    assert back.shown() == SERVED.shown()
    assert back.shown().data == repr(SERVED.row)
    assert back.shown().response == repr(b"\xfe\xff not utf-8")  # not UTF-8: shown as the bytes' repr
    assert back.error == SERVED.error and back.latency_ms == 12.5 and back.failed


@pytest.mark.parametrize(
    "record",
    [
        LogLine(1.5, "WARNING", "two\nlines", "stdout", "tiny", "1.0", "9000", 42, "rid"),
        LogLine(1.5, "ERROR", "Failed to load x", "backend"),
        WorkerChange(2.0, "tiny", "1.0", "READY", "9000", 42, "gen1", 0, 12.5),
        WorkerChange(2.0, "tiny", "1.0", "FAILED", error="no module named x"),
        Swap(3.0, "tiny", "1.0", "gen2", "gen1", "in-place", 2, 0.25, "kept the weights"),
    ],
)
def test_every_other_event_survives_the_trip(record: LogLine | WorkerChange | Swap) -> None:
    assert from_json(_wire(to_json(record))) == record


def test_an_event_page_keeps_order_and_numbers() -> None:
    events = [(3, SERVED), (4, LogLine(1.0, "INFO", "hi")), (9, WorkerChange(2.0, "m", "1", "DIED", exit_code=-9))]
    page = page_from_json(_wire(page_to_json(events, 9, 12)))
    assert (page.next, page.latest) == (9, 12)
    assert [type(e) for e in page.events] == [ServedRequest, LogLine, WorkerChange]
    assert page.of(WorkerChange)[0].detail() == "status=DIED exit_code=-9"
    assert EventPage(0, 0).of(ServedRequest) == []


def test_timings_and_workers_survive_the_trip() -> None:
    timings = [ModelTimings("a", 3, (StageTiming("queue", 0.1, 0.3, 3), StageTiming("latency", 2.0, 4.0, 3)))]
    assert timings_from_json(_wire(timings_to_json(timings))) == timings
    view = WorkerView("9000", 42, "READY", "gen1", None, 2, 1, {"model_dir": "/m"}, {"model": {}})
    versions = [VersionWorkers("a", "1.0", "gen1", (view,), None), VersionWorkers("b", "2", "g", (), "why")]
    assert workers_from_json(_wire(workers_to_json(versions))) == versions


def test_another_schema_is_a_clear_error() -> None:
    data = to_json(LogLine(1.0, "INFO", "x"))
    data["schema"] = SCHEMA + 1
    with pytest.raises(RecordError, match=rf"schema {SCHEMA + 1}.*reads schema {SCHEMA}.*start it again"):
        from_json(data)
    with pytest.raises(RecordError, match="schema None"):
        requests_from_json([{"kind": "request"}])


def test_a_wrong_field_is_named() -> None:
    data = to_json(SERVED)
    data["status"] = "503"
    with pytest.raises(RecordError, match="request record: field 'status' should be int, got '503'"):
        from_json(data)
    with pytest.raises(RecordError, match="unknown kind 'gossip'"):
        from_json({"schema": SCHEMA, "kind": "gossip"})
    with pytest.raises(RecordError, match="expected a swap record, got a log record"):
        decode_as(to_json(LogLine(1.0, "INFO", "x")), Swap)
    with pytest.raises(RecordError, match="expected a JSON object, got list"):
        from_json([])


def test_a_reload_answer_says_its_sentence() -> None:
    swap = Swap(3.0, "tiny", "1.0", "gen2", "gen1", "blue-green", 2, 0.25)
    data = to_json(swap)
    assert data["status"] == swap.status and data["generation"] == "gen2" and data["mode"] == "blue-green"
    assert swap.status == (
        'Model "tiny" version 1.0 now serves generation gen2: started new workers, then moved traffic '
        "(2 workers, 0.250 s)"
    )


@pytest.mark.parametrize(
    "row",
    [
        {"body": bytes(range(256)) * 400},  # 100 KB of every byte value
        {"z": 1, "a": [{"k": b"\x00" * 3000}], "m": "it's " * 900},  # the row's own order, nested values
        {"body": {"input": list(range(50_000))}},
        {"s": "a'" + "x" * 3000 + '"'},  # the cut would change repr's quotes: the whole repr decides
        {"body": bytearray(b"\xff" * 5000), "n": None},
    ],
)
def test_a_preview_is_the_head_of_the_repr_without_the_repr_of_the_rest(row: dict[str, object]) -> None:
    for limit in (2000, 500, 40):
        full = repr(row)
        assert preview(row, limit) == (full if len(full) <= limit else full[: limit - 1] + "…")
