"""One record per served request: the backend in this process serves a request, and the replay ring,
the event stream and the timings hold the very same ``ServedRequest`` object (no second dict)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from ts_notebook.backend.config import from_args
from ts_notebook.backend.server import Backend
from ts_notebook.records import ServedRequest, WorkerChange


async def _serve_one(store: Path, run_dir: Path, config_file: Path) -> None:
    config = from_args(
        ["--model-store", str(store), "--ts-config", str(config_file), "--run-dir", str(run_dir),
         "--disable-token-auth", "--models", "shared=probe.mar"]
    )  # fmt: skip
    backend = Backend(config)
    await backend.start()
    try:
        url = f"{backend.addresses['inference_address']}/predictions/shared"
        async with aiohttp.ClientSession() as session, session.post(url, data=b"\x00raw bytes") as answer:
            assert answer.status == 200
            request_id = answer.headers["x-request-id"]
        kept = backend.requests.summaries("shared")
        assert [r.request_id for r in kept] == [request_id]
        numbered, _ = backend.events.since(0, kind="request", model="shared")
        assert [record for _, record in numbered] == kept
        assert numbered[-1][1] is kept[-1]  # the same object, built once
        record = kept[-1]
        assert isinstance(record, ServedRequest) and record.row == {"body": b"\x00raw bytes"}  # bytes kept
        assert record.body == b"ok" and record.shown().response == "ok"  # decoded when read
        assert record.context is not None and record.context.properties()["model_dir"] == record.context.model_dir
        assert backend.requests.timings("shared")[0].requests == 1
        ready = [e for _, e in backend.events.since(0, kind="worker")[0] if isinstance(e, WorkerChange)]
        assert [c.status for c in ready] == ["READY"] and ready[0].load_ms is not None
    finally:
        await backend.stop()


def test_the_ring_and_the_event_stream_hold_the_same_record(store: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "config.properties"
    config_file.write_text(
        "inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n"
        "metrics_address=http://127.0.0.1:0\ndefault_workers_per_model=1\n"
    )
    asyncio.run(asyncio.wait_for(_serve_one(store, tmp_path / "run", config_file), 120))
