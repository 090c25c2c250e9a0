"""Serving benchmark: ts_notebook's embedded backend against real TorchServe 0.12.0, in one run.

Both servers serve the very same archives, built once with ``ts_notebook.archive.build_archive``:
a tiny 4→8→3 MLP (eager state_dict) and a BERT-sized classifier (``BertForSequenceClassification``
from a small ``BertConfig``, random weights, a tokenizer built in code: nothing is downloaded), each
with one lean TorchServe-style handler. The servers run one after the other, never together, each
isolated (own ports, root folder, TMPDIR), and are stopped by pid. Measured:

- cold start: process launch → first HTTP 200 from ``/predictions`` (tiny model as a start-up model);
- register: ``POST /models?...&synchronous=true`` → first HTTP 200 from the new model;
- the tiny model's throughput, p50 and p99 with 1, 4 and 16 keep-alive clients, on 1 and 2 workers;
- the BERT-sized model with 2 workers and 4 clients;
- peak RSS of the front end (the JVM, or our backend process) and of the workers, sampled every 100 ms.

Results go to ``bench/results/serving.json`` and ``bench/results/serving.md``; the table is also
printed. See ``bench/README.md``.

Environment:
    TS_REF_VENV   venv holding torchserve 0.12.0 and pyyaml (required; ``make compat-venv``)
    REPEATS       repeats of every load run (default 3)
    COLD_REPEATS  repeats of the cold start and of the registration (default 5: one-shot timings are noisier)
    N             requests per tiny-model load run (default 2000)
    N_BERT        requests per BERT load run (default 400)
    WINDOW        seconds: a load run also stops after this long (default 10)
    WARMUP        untimed requests before each load setting (default 50; BERT: a fifth of it, at least 8)
    CONCURRENCY   tiny-model client counts (default "1,4,16")
    WORKERS       tiny-model worker counts (default "1,2")
    COLD_WORKERS  workers of the start-up model in the cold-start test (default 1)
    SKIP_BERT     1: leave the BERT-sized model out
    ORDER         which server's session runs first: "ts,ours" (default) or "ours,ts"
    WAIT_IDLE     e.g. 0.6: first wait until the 1-min load average is below it (at most WAIT_MAX s, default 900)
    MAX_SECONDS   the run gives up (servers stopped, partial results kept) after this long (default 1800)

The exit status is 0 whether the targets are met or not (this is a report); 2 when the benchmark
cannot run at all (no reference venv).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import importlib.metadata
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
import psutil  # type: ignore[import-untyped]

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"  # git-ignored
INPUTS = WORK / "serving-inputs"
OVERLAY = WORK / "serving-ts-overlay"
RESULTS = BENCH / "results"

sys.path.insert(0, str(REPO))
from tests.compat.torchserve import TorchServe  # noqa: E402

# The targets, ours ÷ TorchServe, measured in the same run.
TARGETS = {
    "cold_start": ("≤", 0.65),
    "register": ("≤", 0.10),
    "tiny_rps": ("≥", 1.25),
    "tiny_p99": ("≤", 1.00),  # "p99 no worse"
    "bert_rps": ("≥", 3.0),
    "frontend_rss": ("≤", 0.25),
}
TINY_BODY = b'{"input": [1, 2, 3, 4]}'
BERT_TEXT = " ".join(f"word{i}" for i in range(40))  # 40 words -> 42 tokens with [CLS] and [SEP]
BERT_BODY = json.dumps({"text": BERT_TEXT}).encode()
BERT_WORKERS, BERT_CLIENTS = 2, 4
BERT_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
    "num_labels": 2,
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SAMPLE_INTERVAL = 0.1

TINY_MODEL = '''"""TinyNet: a 4 -> 8 -> 3 MLP."""

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))
'''

TINY_HANDLER = '''"""Lean handler for TinyNet: JSON {"input": [4 numbers]} -> a list of 3 floats per request."""

import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class TinyHandler(BaseHandler):
    def preprocess(self, data):
        rows = []
        for request in data:
            body = request.get("data")
            if body is None:
                body = request.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.append(body["input"] if isinstance(body, dict) else body)
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data):
        return data.tolist()
'''

BERT_HANDLER = '''"""Handler for a transformers sequence classifier saved with save_pretrained in model_dir."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from ts.torch_handler.base_handler import BaseHandler


class BertHandler(BaseHandler):
    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        self.initialized = True

    def preprocess(self, data):
        texts = []
        for request in data:
            body = request.get("data")
            if body is None:
                body = request.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = body.decode("utf-8")
            texts.append(body["text"] if isinstance(body, dict) else body)
        return self.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")

    def inference(self, data, *args, **kwargs):
        with torch.inference_mode():
            return self.model(**data).logits

    def postprocess(self, data):
        probs = torch.softmax(data, dim=-1)
        return [{"label": int(p.argmax()), "scores": [round(float(x), 6) for x in p]} for p in probs]
'''


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_ints(name: str, default: str) -> list[int]:
    return [int(v) for v in (os.environ.get(name, "").strip() or default).split(",") if v.strip()]


@dataclass(frozen=True)
class Settings:
    repeats: int
    cold_repeats: int
    n: int
    n_bert: int
    window: float
    warmup: int
    concurrency: list[int]
    workers: list[int]
    cold_workers: int
    skip_bert: bool
    order: list[str]
    max_seconds: float

    @staticmethod
    def from_env() -> Settings:
        order = [s.strip() for s in os.environ.get("ORDER", "ts,ours").split(",")]
        if sorted(order) != ["ours", "ts"]:
            raise SystemExit(f"ORDER must be 'ts,ours' or 'ours,ts', not {os.environ.get('ORDER')!r}")
        return Settings(
            repeats=env_int("REPEATS", 3),
            cold_repeats=env_int("COLD_REPEATS", 5),
            n=env_int("N", 2000),
            n_bert=env_int("N_BERT", 400),
            window=env_float("WINDOW", 10.0),
            warmup=env_int("WARMUP", 50),
            concurrency=env_ints("CONCURRENCY", "1,4,16"),
            workers=env_ints("WORKERS", "1,2"),
            cold_workers=env_int("COLD_WORKERS", 1),
            skip_bert=os.environ.get("SKIP_BERT", "").strip() not in ("", "0"),
            order=order,
            max_seconds=env_float("MAX_SECONDS", 1800.0),
        )


class OutOfTime(Exception):
    """The run passed MAX_SECONDS: what is measured so far is kept, the servers are stopped."""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise OutOfTime(f"MAX_SECONDS reached before {what}")


# --- inputs -----------------------------------------------------------------------------------


def _make_models(folder: Path, which: str) -> None:
    """Runs in a child process (``--make-models``): torch and transformers stay out of the timing process."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
        import torch

    if which == "tiny":
        sys.path.insert(0, str(folder))
        from tiny_model import TinyNet  # type: ignore[import-not-found]

        torch.manual_seed(0)
        torch.save(TinyNet().state_dict(), folder / "tiny_state.pth")
        return
    import transformers

    out = folder / "bert"
    shutil.rmtree(out, ignore_errors=True)
    words = [f"word{i}" for i in range(BERT_CONFIG["vocab_size"] - len(SPECIAL_TOKENS))]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    tokenizer = transformers.BertTokenizerFast(vocab=vocab)  # not vocab_file: transformers 5 ignores it
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**BERT_CONFIG)).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # Check what the handler will do: reload from the folder, tokenize the request text, run once.
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = tokenizer([BERT_TEXT], return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 42 and vocab["[UNK]"] not in ids, ids
    with torch.inference_mode():
        assert tuple(model(**batch).logits.shape) == (1, 2)
    params = sum(p.numel() for p in model.parameters())
    (out.parent / "bert_info.json").write_text(json.dumps({"parameters": params, "tokens": len(ids)}))


def _fingerprint(which: str) -> str:
    text = {"tiny": TINY_MODEL + TINY_HANDLER, "bert": BERT_HANDLER + json.dumps(BERT_CONFIG) + BERT_TEXT}[which]
    versions = [_version(d) for d in ("torch", "transformers", "ts_notebook")]
    return hashlib.sha256((text + repr(versions)).encode()).hexdigest()[:16]


def make_archive(which: str) -> Path:
    """The model's archive (cached in bench/work between runs), built with our build_archive."""
    from ts_notebook.archive import build_archive

    folder = INPUTS / which
    mar = folder / "store" / f"{which}.mar"
    stamp = folder / "stamp"
    if mar.is_file() and stamp.is_file() and stamp.read_text() == _fingerprint(which):
        return mar
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "store").mkdir(parents=True)
    if which == "tiny":
        (folder / "tiny_model.py").write_text(TINY_MODEL)
        (folder / "tiny_handler.py").write_text(TINY_HANDLER)
    else:
        (folder / "bert_handler.py").write_text(BERT_HANDLER)
    print(f"building the {which} model in a child process -> {folder}", flush=True)
    subprocess.run([sys.executable, __file__, "--make-models", str(folder), which], check=True)
    if which == "tiny":
        build_archive(
            "tiny",
            "1.0",
            str(folder / "tiny_handler.py"),
            model_file=str(folder / "tiny_model.py"),
            serialized_file=str(folder / "tiny_state.pth"),
            export_path=folder / "store",
            force=True,
        )
    else:
        build_archive(
            "bert",
            "1.0",
            str(folder / "bert_handler.py"),
            extra_files=[str(folder / "bert")],
            export_path=folder / "store",
            force=True,
        )
    stamp.write_text(_fingerprint(which))
    return mar


def make_overlay(ref_venv: Path) -> tuple[Path | None, list[str]]:
    """A folder of links to the project venv's transformers and the packages it needs that the reference
    venv lacks (``make compat-venv`` installs no transformers), for TorchServe's PYTHONPATH. None: not needed."""
    if _ref_has(ref_venv, "transformers"):
        return None, []
    from packaging.requirements import Requirement

    needed, todo, seen = [], ["transformers"], set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen or key == "torch":  # torch: the reference venv's own, the same version
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        needed.append(dist)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    present = _ref_present(ref_venv, [d.metadata["Name"] for d in needed])
    shutil.rmtree(OVERLAY, ignore_errors=True)
    OVERLAY.mkdir(parents=True)
    linked = []
    for dist in needed:
        name = dist.metadata["Name"]
        if name in present:
            continue
        roots = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for root in sorted(roots):
            src = Path(str(dist.locate_file(root)))
            if root == "__pycache__" or root.endswith(".pth") or not src.exists():
                continue
            if not (OVERLAY / root).exists():
                (OVERLAY / root).symlink_to(src)
        linked.append(f"{name} {dist.version}")
    return OVERLAY, sorted(linked)


def _ref_python(ref_venv: Path, code: str) -> str:
    proc = subprocess.run([str(ref_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def _ref_has(ref_venv: Path, module: str) -> bool:
    return _ref_python(ref_venv, f"import importlib.util as u; print(u.find_spec({module!r}) is not None)") == "True"


def _ref_present(ref_venv: Path, names: list[str]) -> set[str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = []\n"
        f"for n in {names!r}:\n"
        "    try:\n        m.version(n); out.append(n)\n"
        "    except m.PackageNotFoundError:\n        pass\n"
        "print(json.dumps(out))"
    )
    return set(json.loads(_ref_python(ref_venv, code) or "[]"))


# --- HTTP -------------------------------------------------------------------------------------


def call(method: str, url: str, body: bytes | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
    """One request on a fresh connection (no proxies, only 127.0.0.1); (status, body) for any status."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks, on sorted data."""
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_load(url: str, body: bytes, clients: int, n: int, window: float) -> dict[str, Any]:
    """``clients`` threads, each with one keep-alive ``http.client`` connection, send POSTs until ``n``
    requests were issued in all or ``window`` seconds passed. Latency: ``perf_counter`` around one
    request and its full response."""
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port, parts.path
    headers = {"Content-Type": "application/json"}
    issued = itertools.count()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    clock: dict[str, float] = {}
    start = threading.Barrier(clients, action=lambda: clock.setdefault("t0", time.perf_counter()))

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.connect()
        start.wait()
        deadline = clock["t0"] + window
        while next(issued) < n and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                resp.read()
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(window + 120)
    wall = time.perf_counter() - clock.get("t0", time.perf_counter())
    ok = statuses.get(200, 0)
    latencies.sort()
    result: dict[str, Any] = {
        "clients": clients,
        "n": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": len(errors),
        "error_samples": errors[:3],
        "wall_s": round(wall, 4),
        "rps": round(ok / wall, 2) if wall > 0 else None,
    }
    if latencies:
        result |= {f"p{p}_ms": round(percentile(latencies, p) * 1000, 3) for p in (50, 90, 99)} | {
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
            "max_ms": round(latencies[-1] * 1000, 3),
        }
    return result


# --- servers ----------------------------------------------------------------------------------


def _env_common(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TS_CONFIG_FILE")}
    env["TMPDIR"] = env["TEMP"] = env["TMP"] = str(tmp)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    return env


class RefServer(TorchServe):
    """Real TorchServe: the compat suite's isolated instance, plus the transformers overlay on PYTHONPATH."""

    kind = "ts"

    def __init__(self, venv: Path, config: dict[str, str], overlay: Path | None) -> None:
        super().__init__(venv, config=config, startup_timeout=120.0)
        self.overlay = overlay

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
        if self.overlay is not None:
            env["PYTHONPATH"] = str(self.overlay)  # the JVM passes it on to the workers after model_dir
        return env

    @property
    def frontend_pid(self) -> int | None:
        return self.pid

    def role(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "frontend"
        with contextlib.suppress(psutil.Error):
            if any(part.endswith("model_service_worker.py") for part in proc.cmdline()):
                return "worker"
        return "other"

    def log_tail(self) -> str:
        return self.logs(40, ("model_log.log", "ts_log.log"))


class OurServer:
    """Our backend as a subprocess: port 0 everywhere, its own root (run dir, store, TMPDIR); stopped by pid."""

    kind = "ours"

    def __init__(self, config: dict[str, str], models: list[str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tsb-ours-"))
        self.store, self.run_dir, self.tmp = self.root / "store", self.root / "run", self.root / "tmp"
        for folder in (self.store, self.tmp):
            folder.mkdir()
        props = {f"{k}_address": "http://127.0.0.1:0" for k in ("inference", "management", "metrics")} | config
        self.config_path = self.root / "config.properties"
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.models = models or []
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.inference_url = self.management_url = ""
        self._tracked: list[tuple[int, float]] = []

    def start(self) -> OurServer:
        cmd = [
            sys.executable, "-m", "ts_notebook.backend",
            "--model-store", str(self.store), "--ts-config", str(self.config_path), "--run-dir", str(self.run_dir),
            "--disable-token-auth", "--enable-model-api",
        ]  # fmt: skip
        if self.models:
            cmd += ["--models", *self.models]
        with open(self.root / "backend.log", "ab") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env_common(self.tmp)
            )
        self.pid = self.process.pid
        info = self.run_dir / "backend.json"
        deadline = time.monotonic() + 120
        while not info.is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"our backend did not start:\n{tail}")
            time.sleep(0.005)
        data = json.loads(info.read_text())
        self.inference_url, self.management_url = data["inference_address"], data["management_address"]
        return self

    @property
    def frontend_pid(self) -> int | None:
        return self.pid

    def role(self, proc: psutil.Process) -> str:
        if proc.pid == self.pid:
            return "frontend"
        with contextlib.suppress(psutil.Error):
            # Workers are forked from the zygote: same command line, but the zygote is their parent.
            if "ts_notebook.backend.zygote" in proc.cmdline():
                return "zygote" if proc.ppid() == self.pid else "worker"
        return "other"

    def log_tail(self) -> str:
        path = self.root / "backend.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.is_file() else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the backend, wait for it and every process of its tree to go; SIGKILL what is left."""
        if self.process is not None:
            for proc in _tree(self.pid):
                with contextlib.suppress(psutil.Error):
                    self._tracked.append((proc.pid, proc.create_time()))
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            deadline = time.monotonic() + 10
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid, created in self._alive():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    if proc.create_time() == created:
                        proc.kill()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _alive(self) -> list[tuple[int, float]]:
        alive = []
        for pid, created in self._tracked:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append((pid, created))
        return alive

    def _stage(self, archive: Path) -> str:
        dest = self.store / archive.name
        if not dest.exists():
            try:
                os.link(archive, dest)
            except OSError:  # another file system
                shutil.copy2(archive, dest)
        return archive.name


Server = RefServer | OurServer


def stage(server: Server, archive: Path) -> str:
    """Put the archive in the server's model store (hard link or copy); its name there."""
    if isinstance(server, RefServer):
        server.store.mkdir(parents=True, exist_ok=True)
        return server._stage(archive)
    return server._stage(archive)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def register(server: Server, url: str, name: str, workers: int) -> tuple[int, bytes]:
    query = urllib.parse.urlencode(
        {"url": url, "model_name": name, "initial_workers": str(workers), "synchronous": "true"}
    )
    return call("POST", f"{server.management_url}/models?{query}", timeout=300)


def unregister(server: Server, name: str) -> int:
    return call("DELETE", f"{server.management_url}/models/{urllib.parse.quote(name)}", timeout=120)[0]


def first_prediction(server: Server, name: str, body: bytes, timeout: float = 120.0) -> tuple[float | None, int]:
    """Poll /predictions/NAME every 10 ms until HTTP 200; (perf_counter at the 200, attempts)."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = call("POST", f"{server.inference_url}/predictions/{name}", body, timeout=timeout)
            if status == 200:
                return time.perf_counter(), attempts
        time.sleep(0.01)
    return None, attempts


# --- measurement helpers ----------------------------------------------------------------------


class MemorySampler:
    """Samples the RSS of every process of a server's tree every 100 ms on a thread, by role
    (front end, worker, zygote, other), keeping peaks per phase: the largest front end, the largest
    single worker, the largest sum over workers, the largest tree total."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self.threads: dict[str, dict[str, int]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(SAMPLE_INTERVAL)

    def sample(self) -> None:
        sums: dict[str, float] = {}
        worker_max = 0.0
        for proc in _tree(self.server.frontend_pid):
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            role = self.server.role(proc)
            sums[role] = sums.get(role, 0.0) + rss
            if role == "worker":
                worker_max = max(worker_max, rss)
        if not sums:
            return
        peaks = self.peaks.setdefault(self.phase, {})
        values = {
            "frontend_mb": sums.get("frontend", 0.0),
            "worker_max_mb": worker_max,
            "workers_sum_mb": sums.get("worker", 0.0),
            "zygote_mb": sums.get("zygote", 0.0),
            "other_mb": sums.get("other", 0.0),
            "tree_mb": sum(sums.values()),
        }
        for key, value in values.items():
            peaks[key] = round(max(peaks.get(key, 0.0), value), 1)


def footprint(server: Server) -> dict[str, Any]:
    """One snapshot of the tree: RSS and PSS (shared pages split between the processes that map them:
    forked workers share torch with the zygote) by role, and each worker's thread count."""
    out: dict[str, Any] = {"rss_mb": {}, "pss_mb": {}, "worker_threads": []}
    for proc in _tree(server.frontend_pid):
        try:
            full = proc.memory_full_info()
            threads = proc.num_threads()
        except psutil.Error:
            continue
        role = server.role(proc)
        out["rss_mb"][role] = round(out["rss_mb"].get(role, 0.0) + full.rss / 2**20, 1)
        out["pss_mb"][role] = round(out["pss_mb"].get(role, 0.0) + getattr(full, "pss", 0) / 2**20, 1)
        if role == "worker":
            out["worker_threads"].append(threads)
    out["pss_total_mb"] = round(sum(out["pss_mb"].values()), 1)
    if isinstance(server, OurServer):  # the torch thread count each worker was given
        _, view = call("GET", f"{server.management_url}/ts_notebook/workers")
        out["torch_threads"] = [w["threads"] for m in json.loads(view) for w in m["workers"]]
    return out


class CpuAccount:
    """CPU seconds over a load run: the machine's busy time against the server's tree and this process
    (the client), children they reaped included. The rest is foreign load, which disturbs the figures.
    Steal time (the hypervisor running other guests on our vCPUs) is reported apart."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def _ours(self) -> float:
        total = 0.0
        for proc in [*_tree(self.server.frontend_pid), psutil.Process()]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return busy, getattr(t, "steal", 0.0)

    def __enter__(self) -> CpuAccount:
        (self.busy0, self.steal0), self.ours0 = self._machine(), self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, steal = self._machine()
        self.busy, self.steal = busy - self.busy0, steal - self.steal0
        self.ours = self._ours() - self.ours0

    def as_dict(self) -> dict[str, float]:
        return {
            "machine_busy_cpu_s": round(self.busy, 2),
            "server_and_client_cpu_s": round(self.ours, 2),
            "foreign_cpu_s": round(max(0.0, self.busy - self.ours), 2),
            "steal_s": round(self.steal, 2),
        }


def summary(values: list[float | None]) -> dict[str, float] | None:
    clean = [v for v in values if v is not None]
    if not clean:
        return None
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "n": len(clean)}


# --- phases -----------------------------------------------------------------------------------


def cold_start(kind: str, make: Callable[[dict[str, str], list[str]], Server], tiny: Path, workers: int) -> dict:
    """Launch → first HTTP 200 from /predictions/tiny, the tiny model loaded as a start-up model."""
    config = {"default_workers_per_model": str(workers)}
    startup = ["tiny=tiny.mar"]
    if kind == "ts":
        config["load_models"] = ",".join(startup)  # what `torchserve --models` sets
    server = make(config, startup)
    stage(server, tiny)
    run: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        server.start()  # returns once /ping answers (TorchServe) or backend.json is written (ours)
        run["serving_s"] = round(time.perf_counter() - t0, 4)
        sampler = MemorySampler(server)
        with sampler:
            t_pred, attempts = first_prediction(server, "tiny", TINY_BODY)
            run["first_prediction_s"] = round(t_pred - t0, 4) if t_pred else None
            run["attempts"] = attempts
            time.sleep(0.5)  # a few more memory samples with the model loaded
        run["rss_peak"] = sampler.peaks.get("start", {})
        run["load_average"] = load_average()
    finally:
        t1 = time.perf_counter()
        server.stop()
        run["stop_s"] = round(time.perf_counter() - t1, 3)
    return run


def load_setting(
    server: Server, name: str, body: bytes, clients: int, s: Settings, n: int, warmup: int, budget: Budget, label: str
) -> dict[str, Any]:
    """Warm-up (untimed), then REPEATS bounded load runs for one (model, workers, clients) setting."""
    url = f"{server.inference_url}/predictions/{name}"
    run_load(url, body, clients, max(warmup, clients), s.window)
    runs = []
    for i in range(s.repeats):
        budget.check(f"{label} run {i + 1}")
        with CpuAccount(server) as cpu:
            res = run_load(url, body, clients, n, s.window)
        res["cpu"] = cpu.as_dict()
        res["load_average"] = load_average()
        runs.append(res)
        print(
            f"  {server.kind:<4} {label:<14} #{i + 1}  {res['rps'] or 0:8.1f} req/s  "
            f"p50 {res.get('p50_ms', 0):7.2f} ms  p99 {res.get('p99_ms', 0):7.2f} ms  "
            f"n={res['n']} ok={res['ok']} err={res['errors']}  "
            f"foreign CPU {res['cpu']['foreign_cpu_s']:.1f} s  steal {res['cpu']['steal_s']:.1f} s",
            flush=True,
        )
    return {"runs": runs, **{k: summary([r.get(k) for r in runs]) for k in ("rps", "p50_ms", "p99_ms")}}


def tiny_session(server: Server, tiny: Path, s: Settings, budget: Budget) -> dict[str, Any]:
    """A running server with no models: timed registrations, then the tiny model's load matrix."""
    out: dict[str, Any] = {"register": [], "tiny": {}, "footprint": {}, "errors": []}
    url = stage(server, tiny)
    with MemorySampler(server) as sampler:
        sampler.phase = "register"
        for i in range(s.cold_repeats):
            budget.check("register")
            name = f"reg{i}"
            t0 = time.perf_counter()
            status, text = register(server, url, name, 1)
            t_call = time.perf_counter() - t0
            t_pred, attempts = first_prediction(server, name, TINY_BODY, 60) if status == 200 else (None, 0)
            run = {
                "register_status": status,
                "register_call_s": round(t_call, 4),
                "first_prediction_s": round(t_pred - t0, 4) if t_pred else None,
                "attempts": attempts,
                "unregister_status": unregister(server, name),
            }
            if status != 200:
                run["register_body"] = text.decode(errors="replace")[:500]
            out["register"].append(run)
            print(f"  {server.kind:<4} register #{i + 1}: {json.dumps(run)}", flush=True)
            time.sleep(0.3)
        sampler.phase = "tiny"
        for workers in s.workers:
            status, text = register(server, url, "tiny", workers)
            if status != 200:
                out["errors"].append(f"tiny with {workers} workers: HTTP {status} {text[:300]!r}\n{server.log_tail()}")
                continue
            _, answer = call("POST", f"{server.inference_url}/predictions/tiny", TINY_BODY)
            out.setdefault("answer", json.loads(answer))
            for clients in s.concurrency:
                out["tiny"][f"{workers}w_{clients}c"] = load_setting(
                    server, "tiny", TINY_BODY, clients, s, s.n, s.warmup, budget, f"tiny {workers}w {clients}c"
                )
            out["footprint"][f"tiny_{workers}w"] = footprint(server)
            unregister(server, "tiny")
    out["rss_peak"] = sampler.peaks
    return out


def bert_session(server: Server, bert: Path, s: Settings, budget: Budget) -> dict[str, Any]:
    """A running server with no models: the BERT-sized model on 2 workers, 4 clients."""
    out: dict[str, Any] = {"bert": None, "footprint": {}, "errors": []}
    url = stage(server, bert)
    with MemorySampler(server) as sampler:
        sampler.phase = "bert"
        t0 = time.perf_counter()
        status, text = register(server, url, "bert", BERT_WORKERS)
        out["bert_register_s"] = round(time.perf_counter() - t0, 3)
        if status != 200:
            out["errors"].append(f"bert: HTTP {status} {text[:500]!r}\n{server.log_tail()}")
        else:
            _, answer = call("POST", f"{server.inference_url}/predictions/bert", BERT_BODY)
            out["answer"] = json.loads(answer)
            warmup = max(8, s.warmup // 5)
            label = f"bert {BERT_WORKERS}w {BERT_CLIENTS}c"
            out["bert"] = load_setting(server, "bert", BERT_BODY, BERT_CLIENTS, s, s.n_bert, warmup, budget, label)
            out["footprint"]["bert"] = footprint(server)
            unregister(server, "bert")
    out["rss_peak"] = sampler.peaks
    return out


# --- report -----------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_idle() -> dict[str, Any] | None:
    raw = os.environ.get("WAIT_IDLE", "").strip()
    if not raw:
        return None
    below, limit = float(raw), env_float("WAIT_MAX", 900)
    start = time.monotonic()
    while (load := os.getloadavg()[0]) >= below and time.monotonic() - start < limit:
        print(f"waiting for the 1-min load average ({load:.2f}) to drop below {below}", flush=True)
        time.sleep(20)
    return {"below": below, "waited_s": round(time.monotonic() - start, 1), "reached": os.getloadavg()[0] < below}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def source_state() -> dict[str, Any]:
    """The commit measured, and which files under src/ differ from it (the working tree is what runs)."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_src": dirty}


def machine_info(ref_venv: Path) -> dict[str, Any]:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "aiohttp": _version("aiohttp"),
        "ts_notebook": _version("ts_notebook"),
        "torchserve": _ref_python(ref_venv, "import importlib.metadata as m; print(m.version('torchserve'))"),
        "java": (java.stderr.splitlines() or ["unknown"])[0],
    }


@dataclass
class Row:
    figure: str
    unit: str
    ts: dict[str, float] | None
    ours: dict[str, float] | None
    target: str | None = None  # a key of TARGETS
    digits: int = 2
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.ts is None or self.ours is None or not self.ts["median"]:
            return None
        return self.ours["median"] / self.ts["median"]

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "–"
        ratio = self.ratio
        if ratio is None:
            return "not measured"
        op, bound = TARGETS[self.target]
        return "PASS" if (ratio <= bound if op == "≤" else ratio >= bound) else "FAIL"


def _cell(s: dict[str, float] | None, digits: int, unit: str) -> str:
    if s is None:
        return "–"
    text = f"{s['median']:.{digits}f}"
    if s.get("n", 1) > 1 and s["min"] != s["max"]:
        text += f" [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"
    return f"{text} {unit}"


def build_rows(result: dict[str, Any]) -> list[Row]:
    ts, ours = result["servers"].get("ts", {}), result["servers"].get("ours", {})
    cold = result["cold_start"]
    rows = [
        Row(
            f"cold start → first prediction (tiny, {result['config']['cold_workers']} worker)", "s",
            summary([r.get("first_prediction_s") for r in cold.get("ts", [])]),
            summary([r.get("first_prediction_s") for r in cold.get("ours", [])]),
            "cold_start",
        ),
        Row(
            "register (sync, 1 worker) → first prediction", "s",
            summary([r.get("first_prediction_s") for r in ts.get("register", [])]),
            summary([r.get("first_prediction_s") for r in ours.get("register", [])]),
            "register", 3,
        ),
    ]  # fmt: skip
    for key in ts.get("tiny", {}) | ours.get("tiny", {}):
        w, c = (int(part[:-1]) for part in key.split("_"))
        label = f"tiny, {w} worker{'s' * (w > 1)} × {c} client{'s' * (c > 1)}"
        a, b = ts.get("tiny", {}).get(key, {}), ours.get("tiny", {}).get(key, {})
        rows += [
            Row(f"{label}: throughput", "req/s", a.get("rps"), b.get("rps"), "tiny_rps", 0),
            Row(f"{label}: p50", "ms", a.get("p50_ms"), b.get("p50_ms")),
            Row(f"{label}: p99", "ms", a.get("p99_ms"), b.get("p99_ms"), "tiny_p99"),
        ]
    if ts.get("bert") or ours.get("bert"):
        a, b = ts.get("bert") or {}, ours.get("bert") or {}
        label = f"BERT-sized, {BERT_WORKERS} workers × {BERT_CLIENTS} clients"
        rows += [
            Row(f"{label}: throughput", "req/s", a.get("rps"), b.get("rps"), "bert_rps", 1),
            Row(f"{label}: p50", "ms", a.get("p50_ms"), b.get("p50_ms"), None, 1),
            Row(f"{label}: p99", "ms", a.get("p99_ms"), b.get("p99_ms"), None, 1),
        ]
    rows += memory_rows(result)
    return rows


def _peak(session: dict[str, Any], key: str, phases: tuple[str, ...]) -> dict[str, float] | None:
    values = [session.get("rss_peak", {}).get(p, {}).get(key) for p in phases]
    clean = [v for v in values if v is not None]
    return {"median": max(clean), "min": max(clean), "max": max(clean), "n": 1} if clean else None


def memory_rows(result: dict[str, Any]) -> list[Row]:
    ts, ours = result["servers"].get("ts", {}), result["servers"].get("ours", {})
    cold = result["cold_start"]
    everything = ("register", "tiny", "bert")
    rows = [
        Row("front end peak RSS, whole load session", "MB", _peak(ts, "frontend_mb", everything),
            _peak(ours, "frontend_mb", everything), "frontend_rss", 0),
        Row("front end peak RSS, cold start (tiny loaded)", "MB",
            summary([r.get("rss_peak", {}).get("frontend_mb") for r in cold.get("ts", [])]),
            summary([r.get("rss_peak", {}).get("frontend_mb") for r in cold.get("ours", [])]), None, 0),
        Row("worker peak RSS (largest one), tiny", "MB", _peak(ts, "worker_max_mb", ("register", "tiny")),
            _peak(ours, "worker_max_mb", ("register", "tiny")), None, 0),
    ]  # fmt: skip
    if (ts.get("rss_peak") or {}).get("bert") or (ours.get("rss_peak") or {}).get("bert"):
        rows.append(Row("worker peak RSS (largest one), BERT-sized", "MB", _peak(ts, "worker_max_mb", ("bert",)),
                        _peak(ours, "worker_max_mb", ("bert",)), None, 0))  # fmt: skip
    rows.append(Row("our zygote peak RSS (no TorchServe counterpart)", "MB", None,
                    _peak(ours, "zygote_mb", everything), None, 0))  # fmt: skip
    return rows


def render_table(rows: list[Row]) -> str:
    lines = ["| figure | TorchServe | ours | ours÷TorchServe | target | PASS/FAIL |", "|---|---|---|---|---|---|"]
    for row in rows:
        target = "–" if row.target is None else f"{TARGETS[row.target][0]} {TARGETS[row.target][1]:.2f}×"
        ratio = "–" if row.ratio is None else f"{row.ratio:.3f}×"
        verdict = {"PASS": "**PASS**", "FAIL": "**FAIL**"}.get(row.verdict, row.verdict)
        lines.append(
            f"| {row.figure} | {_cell(row.ts, row.digits, row.unit)} | {_cell(row.ours, row.digits, row.unit)} "
            f"| {ratio} | {target} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_line(rows: list[Row]) -> str:
    judged = [r for r in rows if r.target is not None]
    failed = [r.figure for r in judged if r.verdict == "FAIL"]
    missing = [r.figure for r in judged if r.verdict == "not measured"]
    text = f"TARGETS: {sum(r.verdict == 'PASS' for r in judged)}/{len(judged)} PASS"
    if failed:
        text += "; FAIL: " + "; ".join(failed)
    if missing:
        text += "; not measured: " + "; ".join(missing)
    return text


def render_details(result: dict[str, Any]) -> str:
    lines = ["| detail | TorchServe | ours |", "|---|---|---|"]
    cold, servers = result["cold_start"], result["servers"]

    def both(label: str, get: Callable[[str], str]) -> None:
        lines.append(f"| {label} | {get('ts')} | {get('ours')} |")

    both(
        "cold start: launch → serving (`/ping` 200 / `backend.json` written)",
        lambda k: _cell(summary([r.get("serving_s") for r in cold.get(k, [])]), 2, "s"),
    )
    both(
        "cold start: stop → every process gone",
        lambda k: _cell(summary([r.get("stop_s") for r in cold.get(k, [])]), 2, "s"),
    )
    both(
        "register: the synchronous call alone",
        lambda k: _cell(summary([r.get("register_call_s") for r in servers.get(k, {}).get("register", [])]), 3, "s"),
    )
    if any("bert_register_s" in servers.get(k, {}) for k in ("ts", "ours")):
        both(
            "BERT-sized: register with 2 workers (sync)",
            lambda k: f"{servers.get(k, {}).get('bert_register_s', '–')} s",
        )
    phases = list(dict.fromkeys(p for k in ("ts", "ours") for p in servers.get(k, {}).get("footprint", {})))
    phases.sort(key=lambda p: p == "bert")  # tiny first, as they ran
    for phase in phases:
        both(
            f"PSS after the {phase} load (front end / workers / zygote; total)", lambda k, p=phase: _pss(servers, k, p)
        )
    for phase in phases:
        both(
            f"torch threads given to each worker, {phase}",
            lambda k, p=phase: (
                "torch default, not limited"
                if k == "ts"
                else str(servers.get(k, {}).get("footprint", {}).get(p, {}).get("torch_threads", "–"))
            ),
        )
        both(
            f"OS threads per worker process after the {phase} load",
            lambda k, p=phase: str(servers.get(k, {}).get("footprint", {}).get(p, {}).get("worker_threads", "–")),
        )
    both(
        "worst foreign CPU during one load run (other work on the machine)",
        lambda k: f"{_worst_cpu(servers.get(k, {}), 'foreign_cpu_s'):.1f} s",
    )
    both(
        "worst steal time during one load run (the host running other guests)",
        lambda k: f"{_worst_cpu(servers.get(k, {}), 'steal_s'):.1f} s",
    )
    return "\n".join(lines)  # fmt: skip


def _source_line(source: dict[str, Any]) -> str:
    dirty = source.get("uncommitted_src") or []
    text = f"ts_notebook measured at commit `{source.get('commit')}`"
    if dirty:
        text += " plus uncommitted changes to " + ", ".join(f"`{d}`" for d in dirty)
    return text + "."


def _answers_line(result: dict[str, Any]) -> str:
    ts, ours = (result["servers"].get(k, {}).get("answers", {}) for k in ("ts", "ours"))
    parts = [
        f"{model}: {'identical' if ts.get(model) == ours.get(model) else 'DIFFERENT'}" for model in ts if model in ours
    ]
    return f"the two servers' answers to the same request were compared ({', '.join(parts) or 'not compared'})."


def _pss(servers: dict[str, Any], kind: str, phase: str) -> str:
    fp = servers.get(kind, {}).get("footprint", {}).get(phase)
    if not fp:
        return "–"
    pss = fp["pss_mb"]
    return (f"{pss.get('frontend', 0):.0f} / {pss.get('worker', 0):.0f} / {pss.get('zygote', 0):.0f}; "
            f"{fp['pss_total_mb']:.0f} MB")  # fmt: skip


def _worst_cpu(session: dict[str, Any], key: str) -> float:
    runs = [r for setting in session.get("tiny", {}).values() for r in setting["runs"]]
    runs += (session.get("bert") or {}).get("runs", [])
    return max((r["cpu"].get(key, 0.0) for r in runs), default=0.0)


def render_markdown(result: dict[str, Any], rows: list[Row]) -> str:
    m, cfg, load = result["machine"], result["config"], result["load_average"]
    overlay = result.get("ts_overlay") or []
    lines = [
        "# Serving: ts_notebook's backend vs TorchServe 0.12.0",
        "",
        f"{result['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GiB · {m['platform']} · "
        f"Python {m['python']} · torch {m['torch']} · transformers {m['transformers']} · aiohttp {m['aiohttp']} · "
        f"TorchServe {m['torchserve']} · {m['java']}",
        "",
        _source_line(result.get("source") or {}),
        "",
        f"Load average (1/5/15 min): {'/'.join(map(str, load['start']))} at start, "
        f"{'/'.join(map(str, load['end']))} at end, highest 1-min value seen "
        f"{max(v[0] for v in load.values())} (the machine may run other work; foreign CPU per run is in the JSON)."
        + (
            f" Waited {result['wait_idle']['waited_s']} s for the 1-min load average to drop below "
            f"{result['wait_idle']['below']}."
            if result.get("wait_idle")
            else ""
        ),
        "",
        f"Settings: COLD_REPEATS={cfg['cold_repeats']} (cold start, register), REPEATS={cfg['repeats']} (load), "
        f"N={cfg['n']} (tiny) / N_BERT={cfg['n_bert']} requests per load run, "
        f"or WINDOW={cfg['window']} s, whichever ends first; WARMUP={cfg['warmup']}; server sessions in the order "
        f"{' then '.join(cfg['order'])}; cold starts alternate. Cells: median [min–max] over the repeats.",
        "",
        render_table(rows),
        "",
        verdict_line(rows),
        "",
        "Both servers run with their defaults: TorchServe's workers use torch's default thread count (every "
        "core: not limited), ours split the cores between the workers by design. Both serve the same archives "
        "(built with `build_archive`) through the same handler code, token auth off, model API on; "
        f"{_answers_line(result)} Memory is RSS sampled every 100 ms over each server's process tree: the front "
        "end is the JVM, or our backend process, alone. Our workers are forked from the zygote and share its pages, "
        "so RSS counts torch once per process; the PSS rows below split shared pages between processes.",
        "",
        *(
            [
                "TorchServe's venv has no transformers: for the BERT-sized session only, its PYTHONPATH (which the "
                "JVM passes on to the workers) gets links to the project venv's " + ", ".join(overlay) + "; torch "
                "stays its own. The cold-start and tiny-model sessions run the reference venv as installed.",
                "",
            ]
            if overlay
            else []
        ),
        render_details(result),
        "",
        *([f"Errors: {e}" for e in result.get("errors", [])] + ([""] if result.get("errors") else [])),
        "Method: cold start = a fresh server with the tiny model as a start-up model (`load_models` / `--models`), "
        "clock from launching the process (`torchserve --start`, `python -m ts_notebook.backend`) to the first "
        "HTTP 200 from `/predictions/tiny`, sent as soon as the server serves (`/ping` polled every 100 ms by "
        "the compat suite's `TorchServe`; `backend.json` every 5 ms) and retried every 10 ms; TorchServe queues "
        "it until its worker is ready. Register = "
        "`POST /models?url=tiny.mar&initial_workers=1&synchronous=true` on a running server with no models, clock "
        "from the call to the first 200 of the new model. Load = one keep-alive `http.client` connection per client "
        "thread, all on 127.0.0.1, the client on the same cores as the server; throughput counts HTTP 200s over "
        "the run's wall time; latency is one request and its whole response.",
        "",
        f"Reproduce: `TS_REF_VENV=$PWD/.venv-ts COLD_REPEATS={cfg['cold_repeats']} REPEATS={cfg['repeats']} "
        f"N={cfg['n']} N_BERT={cfg['n_bert']} "
        f"WINDOW={cfg['window']:g} .venv/bin/python bench/bench_serving.py`. "
        "Raw runs: `serving.json`.",
    ]
    return "\n".join(lines) + "\n"


def reference_venv() -> Path | None:
    venv = common.reference_venv("torchserve", "torchserve 0.12.0")
    if venv is not None and shutil.which("java") is None:
        print("TorchServe needs Java (17) on PATH.")
        return None
    return venv


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so every `finally` stops its server."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_all(ref_venv: Path, s: Settings, result: dict[str, Any]) -> None:
    budget = Budget(s.max_seconds)
    tiny = make_archive("tiny")
    bert = None if s.skip_bert else make_archive("bert")
    overlay, linked = make_overlay(ref_venv) if bert is not None else (None, [])
    result["ts_overlay"] = linked
    if bert is not None:
        info = json.loads((INPUTS / "bert" / "bert_info.json").read_text())
        result["config"]["bert"] = {**BERT_CONFIG, **info, "mar_bytes": bert.stat().st_size}
    result["config"]["tiny_mar_bytes"] = tiny.stat().st_size

    def make(kind: str, with_overlay: bool) -> Callable[[dict[str, str], list[str]], Server]:
        if kind == "ts":
            return lambda config, models: RefServer(ref_venv, config, overlay if with_overlay else None)
        return lambda config, models: OurServer(config, models)

    # Cold starts, alternating the servers (and who goes first) so that both see the same machine state.
    result["cold_start"] = {"ts": [], "ours": []}
    for i in range(s.cold_repeats):
        for kind in s.order if i % 2 == 0 else s.order[::-1]:
            budget.check("cold start")
            run = cold_start(kind, make(kind, False), tiny, s.cold_workers)
            result["cold_start"][kind].append(run)
            print(f"  {kind:<4} cold start #{i + 1}: {json.dumps({k: v for k, v in run.items() if k != 'rss_peak'})}",
                  flush=True)  # fmt: skip
    result["load_average"]["after_cold_start"] = load_average()
    common.write_json("serving.json", result)
    # Then, model by model, one session per server (a fresh server with no models), one after the other.
    # The reference venv runs as installed, except that the BERT session puts transformers on its path.
    phases: list[tuple[str, Callable[[Server], dict[str, Any]]]] = [
        ("tiny", lambda server: tiny_session(server, tiny, s, budget))
    ]
    if bert is not None:
        phases.append(("bert", lambda server: bert_session(server, bert, s, budget)))
    for phase, body in phases:
        for kind in s.order:
            budget.check(f"{kind} {phase} session")
            server = make(kind, phase == "bert")({}, [])
            try:
                server.start()
                out = body(server)
            finally:
                server.stop()
            merged = result["servers"].setdefault(kind, {"rss_peak": {}, "footprint": {}, "errors": [], "answers": {}})
            merged["rss_peak"] |= out.pop("rss_peak")
            merged["footprint"] |= out.pop("footprint")
            merged["errors"] += out.pop("errors")
            merged["answers"][phase] = out.pop("answer", None)
            merged |= out
            result["load_average"][f"after_{kind}_{phase}"] = load_average()
            common.write_json("serving.json", result)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--make-models":
        _make_models(Path(sys.argv[2]), sys.argv[3])
        return 0
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    ref_venv = reference_venv()
    if ref_venv is None:
        return 2
    s = Settings.from_env()
    waited = wait_idle()
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(ref_venv),
        "source": source_state(),
        "config": dict(vars(s)),
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
        "wait_idle": waited,
        "load_average": {"start": load_average()},
        "cold_start": {},
        "servers": {},
        "errors": [],
    }
    started = time.monotonic()
    with sigterm_as_interrupt():
        try:
            run_all(ref_venv, s, result)
        except (OutOfTime, RuntimeError, AssertionError) as exc:
            result["errors"].append(f"{type(exc).__name__}: {exc}")
            print(f"error: {exc}", flush=True)
        except KeyboardInterrupt as exc:  # every server was stopped on the way out; keep the raw runs only
            result["errors"].append(f"interrupted: {exc}")
            common.write_json("serving.json", result)
            print("interrupted: partial results in serving.json, serving.md left as it was", flush=True)
            return 130
    result["load_average"]["end"] = load_average()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    for kind, sess in result["servers"].items():
        result["errors"] += [f"{kind}: {e}" for e in sess.get("errors", [])]
    common.write_json("serving.json", result)
    rows = build_rows(result)
    (RESULTS / "serving.md").write_text(render_markdown(result, rows))
    print()
    print(render_table(rows))
    print()
    print(verdict_line(rows))
    print(f"elapsed {result['elapsed_s']} s; load average {result['load_average']['start']} -> "
          f"{result['load_average']['end']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
