"""Served requests as tests: a model's recorded requests (the backend's replay ring) written as a
plain pytest module and the payloads beside it.

Everything is read from the backend and checked before a byte is written; the module and its
folder are then written under temporary names and moved into place, so a failure leaves nothing
half-written (and an earlier export of the same file stays as it was).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ts_notebook.client import Client, ServerError
from ts_notebook.compare import ATOL, RTOL
from ts_notebook.errors import TsNotebookError
from ts_notebook.golden.module import MARKER, module_text
from ts_notebook.golden.payloads import GoldenError, write_request
from ts_notebook.records import ServedRequest

ALL = 1_000_000  # "every kept request": the ring holds far fewer
INDEX = "README.txt"  # marks a payload folder as ours, so a re-export may replace it


@dataclass(frozen=True)
class GoldenTests:
    """The value of ``%ts_serve requests NAME --to-pytest FILE``: what was written, and how to run it."""

    model: str
    module: Path
    payloads: Path
    request_ids: tuple[str, ...]
    target: str  # the archive or model folder replayed through, or the URL posted to
    url: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_text(self) -> str:
        how = f"POST to {self.target}" if self.url else f"replayed through {self.target}"
        lines = [
            f'wrote {len(self.request_ids)} test(s) of model "{self.model}" to {self.module} '
            f"(requests and answers in {self.payloads.name}/; {how})",
            f"run them: pytest {self.module}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def __repr__(self) -> str:
        return self.to_text()


def write_tests(
    client: Client,
    model: str,
    path: str | Path,
    *,
    failed: bool = False,
    last: int | None = None,
    url: str | None = None,
    model_path: str | Path | None = None,
    model_store: str | Path | None = None,
    key_file: str | Path | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> GoldenTests:
    """Write model ``model``'s recorded requests as the pytest module ``path`` and a folder beside it.

    By default each test replays its request through the model's registered archive or folder
    (``model_path`` overrides it; a relative registration is looked up in ``model_store``); with
    ``url`` it POSTs the request to that served URL instead (the token from ``key_file``). ``last``
    keeps only the newest N, ``failed`` only the failed ones.

    Raises:
        GoldenError: a bad argument, an unknown model, no recorded (or no failed) requests, a target
            that cannot be found, or a path that cannot be written; nothing is written then.
    """
    module = _module_path(path)
    _check_numbers(last, rtol, atol)
    described = _describe(client, model)
    records, notes = _records(client, model, failed=failed, last=last)
    if url:
        target = url
    else:
        target = str(_target(described, model_path, model_store))
        notes += _stale(records, Path(target))
    if not (module.name.startswith("test_") or module.stem.endswith("_test")):
        notes.append(f"pytest collects test_*.py and *_test.py files by itself: run {module.name} by its path")
    payloads = module.with_name(module.stem + "_requests")
    text = module_text(
        name=str(path),
        folder=payloads.name,
        model=model,
        request_ids=[r.request_id for r in records],
        target=target,
        url=bool(url),
        key_file=str(key_file) if key_file and url else None,
        rtol=rtol,
        atol=atol,
    )
    _write(module, payloads, text, records)
    return GoldenTests(model, module, payloads, tuple(r.request_id for r in records), target, bool(url), tuple(notes))


def _module_path(path: str | Path) -> Path:
    module = Path(path).expanduser().absolute()
    if module.suffix != ".py":
        raise GoldenError(f"{path}: the tests are a Python module: give a file name ending in .py (test_NAME.py)")
    if module.is_dir():
        raise GoldenError(f"{path} is a folder: give the file name of the module to write, e.g. {path}/test_NAME.py")
    if module.exists() and not _ours(module):
        raise GoldenError(
            f"{path} exists and was not written by --to-pytest: it is left as it is. Choose another file name."
        )
    return module


def _ours(module: Path) -> bool:
    try:
        with open(module, encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def _check_numbers(last: int | None, rtol: float, atol: float) -> None:
    if last is not None and last < 1:
        raise GoldenError(f"--last {last}: give the number of newest requests to write, 1 or more")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (math.isfinite(value) and value >= 0):
            raise GoldenError(f"--{name} {value}: a tolerance is a finite number, 0 or more")


def _describe(client: Client, model: str) -> list[dict[str, object]]:
    try:
        return client.describe(model)
    except ServerError as exc:
        if exc.status != 404:
            raise
        known = ", ".join(sorted(m["modelName"] for m in client.list_models())) or "none"
        raise GoldenError(f'no model "{model}" is registered (registered: {known})') from None


def _records(client: Client, model: str, *, failed: bool, last: int | None) -> tuple[list[ServedRequest], list[str]]:
    """The full records to write, oldest first, and a note for each kept request that cannot be a test."""
    summaries = client.requests(model, failed=failed, limit=last or ALL)
    if not summaries:
        if failed:
            raise GoldenError(
                f'model "{model}" has no failed requests kept: there is nothing to write with --failed. '
                "Leave --failed out to write its served requests."
            )
        raise GoldenError(
            f'model "{model}" has no recorded requests: send it some (%ts_serve predict {model} ...) and write '
            "the tests again"
        )
    records, notes = [], []
    for summary in summaries:
        try:
            record = client.request(summary.request_id)
        except ServerError:  # pushed out of the ring since it was listed
            notes.append(f"request {summary.request_id} left the backend's ring while being read: not written")
            continue
        problem = _unreplayable(record)
        if problem:
            notes.append(f"request {record.request_id} {problem}: not written")
        else:
            records.append(record)
    if not records:
        raise GoldenError(
            f'none of model "{model}"\'s {len(summaries)} kept request(s) can be replayed:\n' + "\n".join(notes)
        )
    return records, notes


def _unreplayable(record: ServedRequest) -> str | None:
    if record.truncated:
        return "was longer than the backend keeps (ts_notebook_replay_body_bytes)"
    if record.context is None or record.row is None:
        return f"never reached a handler (status {record.status})"
    if record.status == 408:
        return "timed out in its worker (408): a replay could not tell the same"
    return None


def _target(described: list[dict[str, object]], model_path: str | Path | None, store: str | Path | None) -> Path:
    """The archive or model folder the tests replay through: ``model_path``, else the one registered."""
    if model_path is not None:
        found = Path(model_path).expanduser().absolute()
        if not found.exists():
            raise GoldenError(f"{model_path}: no such archive or model folder")
        return found
    url = str(described[0].get("modelUrl") or "") if described else ""
    candidates = [Path(url)] if Path(url).is_absolute() else [Path(store) / url] if store and url else []
    for candidate in candidates:
        if candidate.exists():
            return candidate.absolute()
    raise GoldenError(
        f"the model was registered from {url!r}, which is not an archive or folder found here: give the archive or "
        "model folder to replay the requests through (--model-path), or write tests against a served URL (--url)"
    )


def _stale(records: list[ServedRequest], target: Path) -> list[str]:
    """A note when the code that served the requests has another handler file than ``target``'s."""
    from ts_notebook.archive.read import open_archive, read_member

    newest = records[-1]
    model = newest.context.manifest.get("model") if newest.context else None
    handler = str(model.get("handler", "")).split(":")[0] if isinstance(model, dict) else ""
    served = Path(newest.context.model_dir) / handler if newest.context and handler else None
    if served is None or not served.is_file():
        return []
    try:
        ours = read_member(open_archive(target), handler)
    except (TsNotebookError, OSError, ValueError):  # a target that cannot be read fails its tests, saying why
        return []
    if ours == served.read_bytes():
        return []
    return [
        f"the requests were served by generation {newest.gen_id}, whose handler {handler} differs from the one in "
        f"{target}: the tests fail until that archive or folder has the served handler (rebuild it with %mar_build, "
        "or give --model-path)"
    ]


def _write(module: Path, payloads: Path, text: str, records: list[ServedRequest]) -> None:
    """Write under temporary names beside the target, then move into place; on failure remove all."""
    created = _missing_parents(module.parent)
    tag = uuid.uuid4().hex[:8]
    staging, new_module = payloads.with_name(f".{payloads.name}.{tag}"), module.with_name(f".{module.name}.{tag}")
    aside = payloads.with_name(f".{payloads.name}.old.{tag}")
    placed = False
    try:
        module.parent.mkdir(parents=True, exist_ok=True)
        if payloads.exists() and not (payloads / INDEX).is_file():
            raise GoldenError(f"{payloads} exists and was not written by --to-pytest: it is left as it is")
        staging.mkdir()
        for record in records:
            write_request(staging / record.request_id, record)
        (staging / INDEX).write_text(f"Recorded requests and answers of {module.name}; written by ts_notebook.\n")
        new_module.write_text(text, encoding="utf-8")
        if payloads.exists():
            payloads.rename(aside)
        staging.rename(payloads)
        placed = True
        os.replace(new_module, module)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # under a path that is no folder, even this raises
            new_module.unlink(missing_ok=True)
        if placed:
            shutil.rmtree(payloads, ignore_errors=True)
        if aside.exists():
            aside.rename(payloads)  # the earlier export stays as it was
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        if isinstance(exc, OSError):
            raise GoldenError(f"cannot write {module}: {exc.strerror or exc}") from exc
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _missing_parents(folder: Path) -> list[Path]:
    """The folders that ``mkdir(parents=True)`` would create, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return list(reversed(missing))
