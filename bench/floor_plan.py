"""The floor benchmark's matrix and run lengths, from the environment (see ``bench/README.md``).

``BENCH_QUICK=1`` changes the defaults to a smoke run (one short round, ours and TorchServe tuned, the
tiny and the lighter BERT-sized model) that only checks the code runs; its results go to ``bench/work``,
never to ``bench/results``. Any variable set explicitly still wins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common import env_float, env_int, env_ints
from model_code import BERT_BODY, TINY_BODY

SERVERS = ("ours", "ts", "ts_tuned", "litserve")  # ts: TorchServe with its defaults
MODELS = ("tiny", "bert", "bert_small")

# The full run's defaults, and the smoke run's (BENCH_QUICK=1).
_FULL = {
    "REPEATS": "3", "CLIENTS": "1,4,16", "PY_CLIENTS": "4", "TINY_WORKERS": "1,2", "BERT_WORKERS": "2",
    "BERT_BATCHES": "1,4", "BERT_SMALL_BATCHES": "1", "BERT_SMALL_PY_CLIENTS": "", "TINY_SECONDS": "3",
    "BERT_SECONDS": "5", "WARM_OURS": "3", "WARM_TS": "10", "COLD_REPEATS": "5", "SERVERS": ",".join(SERVERS),
    "MODELS": ",".join(MODELS), "MAX_SECONDS": "3600",
}  # fmt: skip
_QUICK = _FULL | {
    "REPEATS": "1", "TINY_SECONDS": "1", "BERT_SECONDS": "2", "WARM_OURS": "1", "WARM_TS": "2",
    "COLD_REPEATS": "1", "SERVERS": "ours,ts_tuned", "MODELS": "tiny,bert_small", "MAX_SECONDS": "600",
}  # fmt: skip


def quick() -> bool:
    return os.environ.get("BENCH_QUICK", "").strip() not in ("", "0")


def _names(name: str, default: str, allowed: tuple[str, ...]) -> list[str]:
    names = [s.strip() for s in (os.environ.get(name, "").strip() or default).split(",") if s.strip()]
    unknown = set(names) - set(allowed)
    if unknown:
        raise SystemExit(f"{name}: unknown {sorted(unknown)}; choose from {', '.join(allowed)}")
    return names


@dataclass(frozen=True)
class Plan:
    repeats: int
    clients: list[int]
    python_clients: list[int]
    tiny_workers: list[int]
    bert_workers: list[int]
    bert_batches: list[int]
    bert_small_batches: list[int]
    bert_small_python_clients: list[int]
    tiny_seconds: float
    bert_seconds: float
    warm_ours_s: float
    warm_ts_s: float
    cold_repeats: int
    servers: list[str]
    models: list[str]
    max_seconds: float
    quick: bool = False

    @staticmethod
    def from_env() -> Plan:
        d = _QUICK if quick() else _FULL
        return Plan(
            repeats=env_int("REPEATS", int(d["REPEATS"])),
            clients=env_ints("CLIENTS", d["CLIENTS"]),
            python_clients=env_ints("PY_CLIENTS", d["PY_CLIENTS"]),
            tiny_workers=env_ints("TINY_WORKERS", d["TINY_WORKERS"]),
            bert_workers=env_ints("BERT_WORKERS", d["BERT_WORKERS"]),
            bert_batches=env_ints("BERT_BATCHES", d["BERT_BATCHES"]),
            bert_small_batches=env_ints("BERT_SMALL_BATCHES", d["BERT_SMALL_BATCHES"]),
            bert_small_python_clients=env_ints("BERT_SMALL_PY_CLIENTS", d["BERT_SMALL_PY_CLIENTS"]),
            tiny_seconds=env_float("TINY_SECONDS", float(d["TINY_SECONDS"])),
            bert_seconds=env_float("BERT_SECONDS", float(d["BERT_SECONDS"])),
            warm_ours_s=env_float("WARM_OURS", float(d["WARM_OURS"])),
            warm_ts_s=env_float("WARM_TS", float(d["WARM_TS"])),
            cold_repeats=env_int("COLD_REPEATS", int(d["COLD_REPEATS"])),
            servers=_names("SERVERS", d["SERVERS"], SERVERS),
            models=_names("MODELS", d["MODELS"], MODELS),
            max_seconds=env_float("MAX_SECONDS", float(d["MAX_SECONDS"])),
            quick=quick(),
        )

    def body(self, model: str) -> bytes:
        return TINY_BODY if model == "tiny" else BERT_BODY  # both BERT-sized models take the same request

    def seconds(self, model: str) -> float:
        return self.tiny_seconds if model == "tiny" else self.bert_seconds

    def workers(self, model: str) -> list[int]:
        return self.tiny_workers if model == "tiny" else self.bert_workers

    def batches(self, model: str, kind: str) -> list[int]:
        """Batch sizes a server runs: the tiny model unbatched; TorchServe's defaults are batch 1."""
        if model == "tiny" or kind == "ts":
            return [1]
        return self.bert_small_batches if model == "bert_small" else self.bert_batches

    def py_clients(self, model: str) -> list[int]:
        """Client counts the Python client also measures; the lighter model leaves it out to keep the run short."""
        return self.bert_small_python_clients if model == "bert_small" else self.python_clients

    def warm_s(self, kind: str) -> float:
        """Warm-up before a cell's rounds: TorchServe's first rounds run 15-30 % below its later ones."""
        return self.warm_ts_s if kind.startswith("ts") else self.warm_ours_s
