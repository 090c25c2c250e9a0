"""Archive build benchmark: ts_notebook's ``build_archive`` against torch-model-archiver 0.12.0.

Both tools run as subprocesses on the same random float32 state_dict (~400 MB), for each archive
format, REPEATS times each. Within one iteration the two run back to back (their order alternates
between iterations) so both see the same machine state. Results go to ``bench/results/archive.json``
and ``bench/results/archive.md``; the markdown table is also printed. See ``bench/README.md``.

Environment:
    TS_REF_VENV  venv holding torch-model-archiver 0.12.0 (required; ``make bench`` sets it)
    BENCH_MB     state_dict size in MB (default 400; ``BENCH_MB=40`` for a quick run)
    REPEATS      runs per tool and format (default 3)

The exit status is 0 whether the target is met or not (this is a report); it is 2 when the
benchmark cannot run at all (no reference venv).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work"  # git-ignored: cached inputs and build outputs
RESULTS = BENCH / "results"

FORMATS = ("default", "zip-store", "tgz", "no-archive")
TARGETS = {"default": "big.mar", "zip-store": "big.mar", "tgz": "big.tar.gz", "no-archive": "big"}
# The target for the `default` format, both against the reference in the same run.
MAX_TIME_RATIO = 0.2
MAX_SIZE_RATIO = 1.03

N_TENSORS = 4
SEED = 0
READ_BLOCK = 16 << 20

MODEL_SOURCE = '''"""BigNet: {n} float32 parameters of {numel:,} elements (~{mb} MB), for archive timing only."""

import torch
from torch import nn


class BigNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{params}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w0[: x.shape[-1]]
'''

HANDLER_SOURCE = '''"""Trivial handler for BigNet: the archive is timed, never served."""

from ts.torch_handler.base_handler import BaseHandler


class BigHandler(BaseHandler):
    pass
'''


@dataclass(frozen=True)
class Inputs:
    """The three files both archivers pack."""

    weights: Path
    model_file: Path
    handler: Path


@dataclass(frozen=True)
class Run:
    """One timed build: wall clock, CPU time (wait4) and peak RSS (sampled high-water mark)."""

    tool: str
    order: int  # 0: ran first in its iteration, 1: second
    wall_s: float
    cpu_s: float
    peak_rss_mb: float | None
    rc: int
    size_bytes: int | None
    stderr_tail: str


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# --- inputs -----------------------------------------------------------------------------------


def make_inputs(mb: int) -> Inputs:
    """Create the state_dict, model file and handler once; later runs reuse them (~1 s vs ~10 s)."""
    numel = mb * 1_000_000 // (4 * N_TENSORS)  # float32: 4 bytes; 400 MB -> 4 x 25M
    folder = WORK / f"inputs-{mb}mb"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(folder / "big_state.pth", folder / "big_model.py", folder / "big_handler.py")
    params = "\n".join(f"        self.w{i} = nn.Parameter(torch.empty({numel}))" for i in range(N_TENSORS))
    inputs.model_file.write_text(MODEL_SOURCE.format(n=N_TENSORS, numel=numel, mb=mb, params=params))
    inputs.handler.write_text(HANDLER_SOURCE)
    stamp = folder / "stamp.json"
    expected = {"seed": SEED, "tensors": N_TENSORS, "numel": numel}
    if not _cache_valid(inputs.weights, stamp, expected):
        _generate_weights(inputs, numel)
        stamp.write_text(json.dumps({**expected, "bytes": inputs.weights.stat().st_size}))
    return inputs


def _cache_valid(weights: Path, stamp: Path, expected: dict[str, int]) -> bool:
    # The stamp is written after the weights are renamed into place: an interrupted run leaves no stamp.
    if not (weights.is_file() and stamp.is_file()):
        return False
    recorded = json.loads(stamp.read_text())
    return all(recorded.get(k) == v for k, v in expected.items()) and recorded.get("bytes") == weights.stat().st_size


def _generate_weights(inputs: Inputs, numel: int) -> None:
    # Imported only here: a cached run never carries torch in the process that times the builds.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy: harmless
        import torch

    print(f"generating {N_TENSORS} x {numel:,} float32 (seed {SEED}) -> {inputs.weights}", flush=True)
    torch.manual_seed(SEED)
    state = {f"w{i}": torch.randn(numel) for i in range(N_TENSORS)}
    _check_model_matches(inputs.model_file, state)
    partial = inputs.weights.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, inputs.weights)


def _check_model_matches(model_file: Path, state: dict[str, Any]) -> None:
    """The generated model's parameters must have the state_dict's names and shapes (no memory: meta)."""
    import torch

    spec = importlib.util.spec_from_file_location("big_model", model_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.device("meta"):
        model = module.BigNet()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if shapes != {k: tuple(v.shape) for k, v in state.items()}:
        raise RuntimeError(f"{model_file} does not match the state_dict: {shapes}")


def warm_page_cache(path: Path) -> None:
    """Read the weights once so that no timed run pays for the disk (the reference was measured warm)."""
    with open(path, "rb") as fh:
        while fh.read(READ_BLOCK):
            pass


# --- timing -----------------------------------------------------------------------------------


def ref_command(ref_venv: Path, fmt: str, inputs: Inputs, out: Path) -> list[str]:
    return [
        str(ref_venv / "bin" / "torch-model-archiver"),
        *("--model-name", "big", "--version", "1.0"),
        *("--model-file", str(inputs.model_file), "--serialized-file", str(inputs.weights)),
        *("--handler", str(inputs.handler), "--export-path", str(out), "--archive-format", fmt, "-f"),
    ]


def our_command(fmt: str, inputs: Inputs, out: Path) -> list[str]:
    """Our drop-in CLI with the very same flags, so both sides pay interpreter start-up and imports."""
    return [
        str(Path(sys.executable).with_name("ts-notebook-archive")),
        *("--model-name", "big", "--version", "1.0"),
        *("--model-file", str(inputs.model_file), "--serialized-file", str(inputs.weights)),
        *("--handler", str(inputs.handler), "--export-path", str(out), "--archive-format", fmt, "-f"),
    ]


class PeakRss:
    """Samples a child's peak RSS every 50 ms on a thread, from its own high-water mark.

    Not wait4's ``ru_maxrss``: Linux carries the pre-exec image (a copy of this benchmark process,
    torch and all) into it. ``VmHWM`` belongs to the post-exec process alone and only grows, so a
    sample misses at most the last 50 ms of growth; without ``/proc``, psutil's current RSS is polled.
    """

    INTERVAL = 0.05

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak_kib = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._done.set()
        self._thread.join()
        return round(self.peak_kib / 1024, 1) if self.peak_kib else None

    def _loop(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, self._sample())
            self._done.wait(self.INTERVAL)

    def _sample(self) -> int:
        try:
            with open(f"/proc/{self._pid}/status") as fh:
                return next((int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")), 0)
        except (OSError, ValueError):
            pass
        try:
            import psutil  # type: ignore[import-untyped]

            return int(psutil.Process(self._pid).memory_info().rss // 1024)
        except Exception:  # psutil missing, or the child already gone: nothing to add
            return 0


def timed(cmd: list[str]) -> tuple[float, float, float | None, int, str]:
    """Run ``cmd``; return wall s, CPU s, peak RSS MB, exit code and the tail of stderr."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # Popen returns once the child has exec'd, so the sampler never sees this process's image.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        sampler = PeakRss(proc.pid)
        # wait4 rather than Popen.wait: the clock stops the moment the child exits, and the kernel
        # reports its CPU time (user + system, all threads).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        peak_mb = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-600:].decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, peak_mb, proc.returncode, tail


def output_size(path: Path) -> int | None:
    if path.is_dir():
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return path.stat().st_size if path.exists() else None


def run_once(tool: str, order: int, cmd: list[str], out: Path, fmt: str) -> Run:
    """One build into a fresh, empty folder, which is then removed."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall, cpu, peak, rc, tail = timed(cmd)
    run = Run(tool, order, round(wall, 4), round(cpu, 3), peak, rc, output_size(out / TARGETS[fmt]), tail)
    shutil.rmtree(out, ignore_errors=True)
    # Deleting drops most of the output's dirty pages; sync writes back the rest so that the next
    # run does not compete with this one's writeback.
    os.sync()
    return run


def bench_format(fmt: str, ref_venv: Path, inputs: Inputs, repeats: int) -> dict[str, Any]:
    warm_page_cache(inputs.weights)
    commands = {
        "ref": ref_command(ref_venv, fmt, inputs, WORK / "out-ref"),
        "ours": our_command(fmt, inputs, WORK / "out-ours"),
    }
    runs: dict[str, list[Run]] = {"ref": [], "ours": []}
    for i in range(repeats):
        # Alternate who goes first, so neither side systematically gets the quieter slot.
        order = ("ref", "ours") if i % 2 == 0 else ("ours", "ref")
        for position, tool in enumerate(order):
            run = run_once(tool, position, commands[tool], WORK / f"out-{tool}", fmt)
            runs[tool].append(run)
            status = "ok" if run.rc == 0 else f"rc={run.rc}: {run.stderr_tail.strip()[-200:]}"
            print(f"  {fmt:<10} {tool:<4} #{i + 1}  {run.wall_s:7.2f} s  {run.size_bytes or 0:>13,} B  {status}")
    return summarize_format(fmt, runs, commands)


def summarize_format(fmt: str, runs: dict[str, list[Run]], commands: dict[str, list[str]]) -> dict[str, Any]:
    sides = {tool: _side_summary(tool_runs, commands[tool]) for tool, tool_runs in runs.items()}
    ref, ours = sides["ref"], sides["ours"]
    ok = ref["ok"] and ours["ok"]
    result: dict[str, Any] = {
        **sides,
        "time_ratio": ours["wall_s"]["median"] / ref["wall_s"]["median"] if ok else None,
        "size_ratio": ours["size_bytes"] / ref["size_bytes"] if ok else None,
    }
    if fmt == "default":
        result["target_pass"] = bool(
            ok and result["time_ratio"] <= MAX_TIME_RATIO and result["size_ratio"] <= MAX_SIZE_RATIO
        )
    return result


def _side_summary(runs: list[Run], cmd: list[str]) -> dict[str, Any]:
    good = [r for r in runs if r.rc == 0]
    sizes = sorted(r.size_bytes for r in good if r.size_bytes is not None)
    return {
        "ok": len(good) == len(runs) and bool(sizes),
        "wall_s": stats([r.wall_s for r in good]),
        "cpu_s": stats([r.cpu_s for r in good]),
        "peak_rss_mb": stats([r.peak_rss_mb for r in good if r.peak_rss_mb is not None]),
        "size_bytes": statistics.median_low(sizes) if sizes else None,  # a size some run really had
        # Sizes can differ between runs when a format stores mtimes that deflate differently (tar).
        "size_bytes_range": [sizes[0], sizes[-1]] if sizes else None,
        "command": cmd,
        "runs": [asdict(r) for r in runs],
    }


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --- checks and context -------------------------------------------------------------------------


def verify_default(inputs: Inputs) -> dict[str, Any]:
    """Outside the timing: our default archive is a sound zip whose weights are the input, byte for byte."""
    from ts_notebook.archive import build_archive

    out = WORK / "out-verify"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        info = build_archive(
            "big",
            "1.0",
            str(inputs.handler),
            serialized_file=str(inputs.weights),
            model_file=str(inputs.model_file),
            export_path=out,
            force=True,
        )
        with zipfile.ZipFile(info.path) as zf:
            bad_member = zf.testzip()  # decompresses every member and checks its CRC
            with zf.open(inputs.weights.name) as member:
                inside = _sha256(member)
            methods = {i.filename: _method(i.compress_type) for i in zf.infolist()}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    weights_identical = inside == _sha256_file(inputs.weights)
    return {
        "testzip_ok": bad_member is None,
        "weights_identical": weights_identical,
        "members": methods,
        "ok": bad_member is None and weights_identical and "MAR-INF/MANIFEST.json" in methods,
    }


def _method(compress_type: int) -> str:
    return {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}.get(compress_type, str(compress_type))


def _sha256(fh: Any) -> str:
    digest = hashlib.sha256()
    while block := fh.read(READ_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return _sha256(fh)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ref_version(ref_venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('torch-model-archiver'))"
    proc = subprocess.run([str(ref_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or f"unknown ({proc.stderr.strip()[-200:]})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def machine_info(ref_venv: Path) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "isal": _version("isal"),
        "ts_notebook": _version("ts_notebook"),
        "torch_model_archiver": _ref_version(ref_venv),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- report -----------------------------------------------------------------------------------


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f} MB"


def _span(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"


def _ratio(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}×"


def target_line(default: dict[str, Any]) -> str:
    verdict = "PASS" if default.get("target_pass") else "FAIL"
    return (
        f"TARGET default: {verdict} — time {_ratio(default['time_ratio'], 3)} (≤ {MAX_TIME_RATIO}×), "
        f"size {_ratio(default['size_ratio'], 4)} (≤ {MAX_SIZE_RATIO}×) of torch-model-archiver"
    )


def render_table(formats: dict[str, Any]) -> str:
    rows = [
        "| format | reference s, median [min–max] | ours s, median [min–max] | time ours/ref "
        "| reference size | our size | size ours/ref | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt, r in formats.items():
        target = "–" if fmt != "default" else ("**PASS**" if r["target_pass"] else "**FAIL**")
        rows.append(
            f"| `{fmt}` | {_span(r['ref']['wall_s'])} | {_span(r['ours']['wall_s'])} | {_ratio(r['time_ratio'], 3)} "
            f"| {_mb(r['ref']['size_bytes'])} | {_mb(r['ours']['size_bytes'])} | {_ratio(r['size_ratio'], 4)} "
            f"| {target} |"
        )
    return "\n".join(rows)


def render_resources(formats: dict[str, Any]) -> str:
    rows = [
        "| format | reference CPU s | ours CPU s | reference peak RSS | ours peak RSS |",
        "|---|---|---|---|---|",
    ]
    for fmt, r in formats.items():
        ref, ours = r["ref"], r["ours"]
        rows.append(
            f"| `{fmt}` | {ref['cpu_s']['median']:.2f} | {ours['cpu_s']['median']:.2f} "
            f"| {ref['peak_rss_mb']['median']:.0f} MB | {ours['peak_rss_mb']['median']:.0f} MB |"
        )
    return "\n".join(rows)


def render_size_notes(formats: dict[str, Any]) -> str:
    notes = []
    for fmt, r in formats.items():
        for tool, name in (("ref", "reference"), ("ours", "ours")):
            span = r[tool]["size_bytes_range"]
            if span and span[0] != span[1]:
                notes.append(f"{name} `{fmt}` {span[0]:,}–{span[1]:,} B")
    return "Output size varied between runs: " + "; ".join(notes) + "." if notes else ""


def render_markdown(result: dict[str, Any]) -> str:
    cfg, m, formats = result["config"], result["machine"], result["formats"]
    load = result["load_average"]
    lines = [
        "# Archive build: ts_notebook vs torch-model-archiver",
        "",
        f"{result['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · Python {m['python']} · torch {m['torch']} · "
        f"isal {m['isal']} · torch-model-archiver {m['torch_model_archiver']}",
        "",
        f"Input: {N_TENSORS} × {cfg['numel']:,} float32 `torch.randn` (seed {SEED}), `torch.save` file "
        f"{cfg['weights_bytes']:,} B, page cache warm. {cfg['repeats']} runs per tool and format, the two tools "
        "interleaved, each run a fresh subprocess. Load average (1/5/15 min): "
        f"{'/'.join(map(str, load['start']))} at start, {'/'.join(map(str, load['end']))} at end, "
        f"highest 1-min value seen {max(v[0] for v in load.values())} (the machine may run other work).",
        "",
        render_table(formats),
        "",
        target_line(formats["default"]) if "default" in formats else "TARGET default: not measured",
        "",
        *([note, ""] if (note := render_size_notes(formats)) else []),
        "Resources per build (median): CPU time (user + system, all threads) and peak RSS "
        "(`VmHWM`, sampled every 50 ms).",
        "",
        render_resources(formats),
        "",
        f"Our `default` archive checked once outside the timing: testzip "
        f"{'ok' if result['verify']['testzip_ok'] else 'FAILED'}, weights byte-identical to the input: "
        f"{'yes' if result['verify']['weights_identical'] else 'NO'}; members: "
        + ", ".join(f"`{k}` {v}" for k, v in result["verify"]["members"].items())
        + ".",
        "",
        f"Reproduce: `make bench` (or `TS_REF_VENV=... BENCH_MB={cfg['bench_mb']} REPEATS={cfg['repeats']} "
        ".venv/bin/python bench/bench_archive.py`). Raw runs: `archive.json`.",
    ]
    return "\n".join(lines) + "\n"


def reference_venv() -> Path | None:
    return common.reference_venv("torch-model-archiver", "torch-model-archiver 0.12.0")


def warm_up(ref_venv: Path) -> None:
    """Import both tools once, untimed, so the first timed run does not pay for cold .pyc files."""
    ref = [str(ref_venv / "bin" / "torch-model-archiver"), "--help"]
    ours = [sys.executable, "-c", "import ts_notebook.archive"]
    for cmd in (ref, ours):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main() -> int:
    ref_venv = reference_venv()
    if ref_venv is None:
        return 2
    mb, repeats = env_int("BENCH_MB", 400), env_int("REPEATS", 3)
    inputs = make_inputs(mb)
    numel = mb * 1_000_000 // (4 * N_TENSORS)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(ref_venv),
        "config": {"bench_mb": mb, "repeats": repeats, "numel": numel, "weights_bytes": inputs.weights.stat().st_size},
        "load_average": {"start": load_average()},
        "target": {"format": "default", "max_time_ratio": MAX_TIME_RATIO, "max_size_ratio": MAX_SIZE_RATIO},
        "formats": {},
    }
    warm_up(ref_venv)
    result["verify"] = verify_default(inputs)
    print(f"verify default: {result['verify']}")
    try:
        for fmt in FORMATS:
            result["formats"][fmt] = bench_format(fmt, ref_venv, inputs, repeats)
            result["load_average"][f"after_{fmt}"] = load_average()
            common.write_json("archive.json", result)  # partial results survive an interrupted run
    finally:
        for out in WORK.glob("out-*"):
            shutil.rmtree(out, ignore_errors=True)
    result["load_average"]["end"] = load_average()
    common.write_json("archive.json", result)
    markdown = render_markdown(result)
    (RESULTS / "archive.md").write_text(markdown)
    print()
    print(render_table(result["formats"]))
    print()
    print(target_line(result["formats"]["default"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
