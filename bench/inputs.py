"""The models and archives the benchmarks build, cached in ``bench/work`` between runs.

- serving (and the notebook benchmark): the tiny MLP's and the BERT-sized classifiers' archives (``bert``
  and the lighter ``bert_small``), built with our ``build_archive``; the weights are made in a child
  process (``python bench/inputs.py --make-models FOLDER WHICH``) so that torch and transformers stay out
  of the process that times;
- archive: a random float32 state_dict of ``BENCH_MB`` MB with a matching model file and handler.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import WORK
from machine import version
from model_code import (
    BERT_CONFIGS,
    BERT_HANDLER,
    BERT_TEXT,
    BIG_HANDLER,
    BIG_MODEL,
    SPECIAL_TOKENS,
    TINY_HANDLER,
    TINY_MODEL,
)

SERVING_INPUTS = WORK / "serving-inputs"
N_TENSORS = 4
SEED = 0
READ_BLOCK = 16 << 20


# --- serving: the tiny and BERT-sized archives ------------------------------------------------


def _import_torch() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy: harmless
        import torch
    return torch


def _make_tiny(folder: Path) -> None:
    torch = _import_torch()
    sys.path.insert(0, str(folder))
    from tiny_model import TinyNet  # type: ignore[import-not-found]

    torch.manual_seed(0)
    torch.save(TinyNet().state_dict(), folder / "tiny_state.pth")


def _make_bert(folder: Path, config: dict[str, int]) -> None:
    torch = _import_torch()
    import transformers

    out = folder / "bert"
    shutil.rmtree(out, ignore_errors=True)
    words = [f"word{i}" for i in range(config["vocab_size"] - len(SPECIAL_TOKENS))]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    tokenizer = transformers.BertTokenizerFast(vocab=vocab)  # not vocab_file: transformers 5 ignores it
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**config)).eval()
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
    bert = which != "tiny" and BERT_HANDLER + json.dumps(BERT_CONFIGS[which]) + BERT_TEXT
    text = bert or TINY_MODEL + TINY_HANDLER
    versions = [version(d) for d in ("torch", "transformers", "ts_notebook")]
    return hashlib.sha256((text + repr(versions)).encode()).hexdigest()[:16]


def make_archive(which: str) -> Path:
    """The model's archive (``tiny``, ``bert`` or ``bert_small``; cached in bench/work between runs), built
    with our build_archive."""
    from ts_notebook.archive import build_archive

    folder = SERVING_INPUTS / which
    mar = folder / "store" / f"{which}.mar"
    stamp = folder / "stamp"
    if mar.is_file() and stamp.is_file() and stamp.read_text() == _fingerprint(which):
        return mar
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "store").mkdir(parents=True)
    files: dict[str, Any]
    if which == "tiny":
        (folder / "tiny_model.py").write_text(TINY_MODEL)
        (folder / "tiny_handler.py").write_text(TINY_HANDLER)
        files = {"model_file": str(folder / "tiny_model.py"), "serialized_file": str(folder / "tiny_state.pth")}
    else:
        (folder / f"{which}_handler.py").write_text(BERT_HANDLER)
        files = {"extra_files": [str(folder / "bert")]}
    print(f"building the {which} model in a child process -> {folder}", flush=True)
    subprocess.run([sys.executable, __file__, "--make-models", str(folder), which], check=True)
    handler = str(folder / f"{which}_handler.py")
    build_archive(which, "1.0", handler, export_path=folder / "store", force=True, **files)
    stamp.write_text(_fingerprint(which))
    return mar


def bert_info(which: str = "bert") -> dict[str, Any]:
    """What the child that made a BERT-sized model found: its parameter count and the request's tokens."""
    return dict(json.loads((SERVING_INPUTS / which / "bert_info.json").read_text()))


def tiny_store(store: Path) -> Path:
    """A model store holding ``tiny.mar`` (the serving benchmark's tiny archive), linked or copied in."""
    mar = make_archive("tiny")
    store.mkdir(parents=True, exist_ok=True)
    dest = store / mar.name
    try:
        os.link(mar, dest)
    except OSError:  # another file system
        shutil.copy2(mar, dest)
    return dest


# --- archive: the big state_dict --------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """The three files both archivers pack."""

    weights: Path
    model_file: Path
    handler: Path


def make_inputs(mb: int) -> Inputs:
    """Create the state_dict, model file and handler once; later runs reuse them (~1 s vs ~10 s)."""
    numel = big_numel(mb)
    folder = WORK / f"inputs-{mb}mb"
    folder.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(folder / "big_state.pth", folder / "big_model.py", folder / "big_handler.py")
    params = "\n".join(f"        self.w{i} = nn.Parameter(torch.empty({numel}))" for i in range(N_TENSORS))
    inputs.model_file.write_text(BIG_MODEL.format(n=N_TENSORS, numel=numel, mb=mb, params=params))
    inputs.handler.write_text(BIG_HANDLER)
    stamp = folder / "stamp.json"
    expected = {"seed": SEED, "tensors": N_TENSORS, "numel": numel}
    if not _cache_valid(inputs.weights, stamp, expected):
        _generate_weights(inputs, numel)
        stamp.write_text(json.dumps({**expected, "bytes": inputs.weights.stat().st_size}))
    return inputs


def big_numel(mb: int) -> int:
    """Elements per tensor for ``mb`` MB of float32 (4 bytes) in ``N_TENSORS`` tensors: 400 MB -> 4 x 25M."""
    return mb * 1_000_000 // (4 * N_TENSORS)


def _cache_valid(weights: Path, stamp: Path, expected: dict[str, int]) -> bool:
    # The stamp is written after the weights are renamed into place: an interrupted run leaves no stamp.
    if not (weights.is_file() and stamp.is_file()):
        return False
    recorded = json.loads(stamp.read_text())
    return all(recorded.get(k) == v for k, v in expected.items()) and recorded.get("bytes") == weights.stat().st_size


def _generate_weights(inputs: Inputs, numel: int) -> None:
    # Imported only here: a cached run never carries torch in the process that times the builds.
    torch = _import_torch()
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


if __name__ == "__main__":
    # The child make_archive starts: python inputs.py --make-models FOLDER tiny|bert|bert_small
    if len(sys.argv) != 4 or sys.argv[1] != "--make-models" or sys.argv[3] not in ("tiny", *BERT_CONFIGS):
        sys.exit("usage: inputs.py --make-models FOLDER tiny|" + "|".join(BERT_CONFIGS))
    if sys.argv[3] == "tiny":
        _make_tiny(Path(sys.argv[2]))
    else:
        _make_bert(Path(sys.argv[2]), BERT_CONFIGS[sys.argv[3]])
