"""Served requests as tests, end to end: a real backend serves a real archive, ``%ts_serve requests NAME
--to-pytest FILE`` writes the module, and a real ``pytest`` subprocess runs it, passing as written and
failing with the diff once the handler answers otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from ts_notebook import golden
from ts_notebook.archive.build import build_archive
from ts_notebook.client import Client

# JSON floats, text, bytes and a failure: each kind of answer the comparison reads.
HANDLER = """
SCALE = 1.0


def handle(data, context):
    if data is None:
        return None
    out = []
    for row in data:
        body = row.get("body")
        if isinstance(body, dict):
            if body.get("fail"):
                raise ValueError("asked to fail")
            out.append({"label": "cat", "scores": [x * SCALE / 3 for x in body["input"]], "n": len(body["input"])})
        elif isinstance(body, str):
            out.append(body.upper())
        else:
            out.append(bytes(reversed(body)))
    return out
"""
REQUESTS = [
    (b'{"input": [1, 2, 3]}', "application/json"),
    ("grüße".encode(), "text/plain; charset=utf-8"),
    (b"\x00\x01\x02\xff", "application/octet-stream"),
    (b'{"fail": true}', "application/json"),
]


def _build(folder: Path, handler: str, archive_format: str = "default") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "golden.py").write_text(handler)
    info = build_archive(
        "golden", "1.0", str(folder / "golden.py"), export_path=folder, archive_format=archive_format, force=True
    )
    return info.path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InteractiveShell, Path, Client]]:
    """A backend (token authorization on) serving golden.mar, which has answered REQUESTS."""
    folder = tmp_path_factory.mktemp("golden")
    mp = pytest.MonkeyPatch()
    (folder / "xdg").mkdir()
    mp.setenv("XDG_RUNTIME_DIR", str(folder / "xdg"))
    mp.chdir(folder)
    archive = _build(folder / "build", HANDLER)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    ip.run_line_magic("reload_ext", "ts_notebook")
    try:
        ip.run_line_magic("ts_serve", "start")
        ip.run_line_magic("ts_serve", f"register {archive} --name golden")
        client = ip.run_line_magic("ts_serve", "client")
        for body, content_type in REQUESTS:
            client.predict("golden", body, content_type=content_type, check=False)
        yield ip, folder, client
    finally:
        with contextlib.suppress(UsageError):
            ip.run_line_magic("ts_serve", "stop")
        mp.undo()


def _pytest(module: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The generated module run as a user runs it: a fresh pytest process, from the module's folder."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", module.name],
        cwd=module.parent,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


def test_written_tests_pass_as_written_and_fail_with_the_diff(
    served: tuple[InteractiveShell, Path, Client],
) -> None:
    ip, folder, _ = served
    result = ip.run_line_magic("ts_serve", "requests golden --to-pytest out/test_golden.py")
    assert isinstance(result, golden.GoldenTests)
    module, payloads = folder / "out/test_golden.py", folder / "out/test_golden_requests"
    assert result.module == module and result.payloads == payloads
    assert len(result.request_ids) == len(REQUESTS)
    assert result.target == str(folder / "build/golden.mar")
    assert result.to_text().splitlines()[1] == f"run them: pytest {module}"
    # payloads: JSON, text and the bytes as they were; no pickle, no token
    kinds = {p.suffix for p in payloads.rglob("*") if p.is_file()}
    assert kinds == {".json", ".txt", ".bin"}
    binary = next(p for p in payloads.rglob("row-0.bin"))
    assert binary.read_bytes() == b"\x00\x01\x02\xff"
    assert (binary.parent / "answer.bin").read_bytes() == b"\xff\x02\x01\x00"
    for request in payloads.rglob("request.json"):
        assert "authorization" not in request.read_text().lower()
    text = module.read_text()
    assert "import pytest" in text and "from ts_notebook import golden" in text and "pickle" not in text

    run = _pytest(module)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout

    # The same requests through an edited handler (a model folder, by the env override) fail with the diff.
    edited = _build(folder / "edited", HANDLER.replace("SCALE = 1.0", "SCALE = 2.0"), "no-archive")
    run = _pytest(module, TS_NOTEBOOK_GOLDEN_MODEL=str(edited))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 3 passed" in run.stdout
    json_id = result.request_ids[0]
    assert f"request {json_id} (POST /predictions/golden) no longer answers as served:" in run.stdout
    assert "$.scores[0]: expected 0.3333333333333333, got 0.6666666666666666 (|difference| 0.333 > atol" in run.stdout


def test_tolerances_are_written_into_the_module(served: tuple[InteractiveShell, Path, Client]) -> None:
    ip, folder, _ = served
    ip.run_line_magic("ts_serve", "requests golden --to-pytest tol/test_tol.py --rtol 1.5 --last 1")
    text = (folder / "tol/test_tol.py").read_text()
    assert "RTOL = 1.5\n" in text and "ATOL = 1e-08\n" in text
    # doubling every score is within a relative tolerance of 1.5 (|a - b| <= 1.5 * max(|a|, |b|))
    edited = _build(folder / "edited_tol", HANDLER.replace("SCALE = 1.0", "SCALE = 2.0"), "no-archive")
    ip.run_line_magic("ts_serve", "requests golden --to-pytest tol/test_tol.py --rtol 1.5 --last 4")
    run = _pytest(folder / "tol/test_tol.py", TS_NOTEBOOK_GOLDEN_MODEL=str(edited))
    assert run.returncode == 0, run.stdout + run.stderr


def test_failed_and_last_choose_the_requests(served: tuple[InteractiveShell, Path, Client]) -> None:
    ip, folder, client = served
    kept = [r.request_id for r in client.requests("golden", limit=1000)]
    failed = ip.run_line_magic("ts_serve", "requests golden --to-pytest sel/test_failed.py --failed")
    assert len(failed.request_ids) == 1
    assert json.loads((failed.payloads / failed.request_ids[0] / "request.json").read_text())["answer"] == {
        "status": 503,
        "file": "answer.txt",
        "error": "Prediction failed",
    }
    last = ip.run_line_magic("ts_serve", "requests golden --to-pytest sel/test_last.py --last 2")
    assert list(last.request_ids) == kept[-2:]
    run = _pytest(folder / "sel/test_failed.py")
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr


def test_url_mode_posts_to_the_served_model(served: tuple[InteractiveShell, Path, Client]) -> None:
    ip, folder, client = served
    url = client.inference_address
    result = ip.run_line_magic("ts_serve", f"requests golden --to-pytest url/test_url.py --url {url} --last 4")
    assert result.url and result.target == url
    text = result.module.read_text()
    assert f'URL = os.environ.get("TS_NOTEBOOK_GOLDEN_URL", "{url}")' in text
    assert client.inference_key and client.inference_key not in text  # the token is read, never written
    run = _pytest(result.module)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout

    # The served code changes: the same tests, against the same URL, fail with the diff.
    edited = _build(folder / "reloaded", HANDLER.replace('"label": "cat"', '"label": "dog"'))
    ip.run_line_magic("ts_serve", f"reload golden {edited}")
    run = _pytest(result.module)
    assert run.returncode == 1, run.stdout + run.stderr
    assert '$.label: expected "cat", got "dog"' in run.stdout
    # Tests written now replay the reloaded code's answers through the registered (older) archive: said so.
    stale = ip.run_line_magic("ts_serve", "requests golden --to-pytest stale/test_stale.py --last 1")
    assert stale.notes[-1].startswith("the requests were served by generation ")
    assert f"differs from the one in {folder / 'build/golden.mar'}: the tests fail until" in stale.notes[-1]


def test_the_python_api_writes_the_same_tests(served: tuple[InteractiveShell, Path, Client], tmp_path: Path) -> None:
    _, folder, client = served
    written = golden.write_tests(
        client, "golden", tmp_path / "test_api.py", failed=True, last=1, model_path=folder / "build/golden.mar"
    )
    assert written.module.is_file() and len(written.request_ids) == 1
    named = golden.write_tests(client, "golden", tmp_path / "golden_checks.py", failed=True, last=1)
    assert named.notes[-1:] == (
        "pytest collects test_*.py and *_test.py files by itself: run golden_checks.py by its path",
    )
    run = _pytest(written.module)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nosuch --to-pytest bad/test_x.py", 'no model "nosuch" is registered (registered: golden, idle, quiet)'),
        (
            "idle --to-pytest bad/test_x.py",
            'model "idle" has no recorded requests: send it some (%ts_serve predict idle ...) and write the tests '
            "again",
        ),
        (
            "quiet --to-pytest bad/test_x.py --failed",
            'model "quiet" has no failed requests kept: there is nothing to write with --failed. Leave --failed out '
            "to write its served requests.",
        ),
        (
            "golden --to-pytest bad/test_x.py --last 0",
            "--last 0: give the number of newest requests to write, 1 or more",
        ),
        ("golden --to-pytest bad/test_x.py --atol -1", "--atol -1.0: a tolerance is a finite number, 0 or more"),
        (
            "golden --to-pytest bad/test_x.txt",
            "bad/test_x.txt: the tests are a Python module: give a file name ending in .py (test_NAME.py)",
        ),
        (
            "golden --to-pytest taken.py",
            "taken.py exists and was not written by --to-pytest: it is left as it is. Choose another file name.",
        ),
        (
            "--to-pytest bad/test_x.py",
            "--to-pytest FILE needs the model NAME: %ts_serve requests NAME --to-pytest FILE",
        ),
        ("golden --url http://x", "--url goes with --to-pytest FILE"),
    ],
)
def test_bad_input_says_why_and_writes_nothing(
    served: tuple[InteractiveShell, Path, Client], line: str, message: str
) -> None:
    ip, folder, client = served
    if "quiet" not in {m["modelName"] for m in client.list_models()}:
        archive = folder / "build/golden.mar"
        ip.run_line_magic("ts_serve", f"register {archive} --name quiet")
        ip.run_line_magic("ts_serve", f"register {archive} --name idle --workers 0")
        client.predict("quiet", "fine", content_type="text/plain")
        (folder / "taken.py").write_text("def test_mine():\n    pass\n")
    before = _files(folder)
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("ts_serve", f"requests {line}")
    assert str(err.value) == message
    assert _files(folder) == before
    assert (folder / "taken.py").read_text() == "def test_mine():\n    pass\n"


def test_an_unwritable_path_says_why_and_leaves_nothing(served: tuple[InteractiveShell, Path, Client]) -> None:
    ip, folder, _ = served
    (folder / "a_file").write_text("not a folder")
    before = _files(folder)
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("ts_serve", "requests golden --to-pytest a_file/sub/test_x.py")
    assert str(err.value).startswith(f"cannot write {folder}/a_file/sub/test_x.py: ")
    assert _files(folder) == before
    # a folder that cannot be made at all (under /proc): nothing is made on the way either
    with pytest.raises(UsageError, match=r"^cannot write /proc/ts_golden/test_x.py: "):
        ip.run_line_magic("ts_serve", "requests golden --to-pytest /proc/ts_golden/test_x.py")
    assert _files(folder) == before
