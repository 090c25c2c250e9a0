"""The floor benchmark's matrix and run lengths, from the environment (see ``bench/README.md``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from common import env_float, env_int, env_ints
from model_code import BERT_BODY, TINY_BODY

SERVERS = ("ours", "ts", "ts_tuned", "litserve")  # ts: TorchServe with its defaults


@dataclass(frozen=True)
class Plan:
    repeats: int
    clients: list[int]
    python_clients: list[int]
    tiny_workers: list[int]
    bert_workers: list[int]
    bert_batches: list[int]
    tiny_seconds: float
    bert_seconds: float
    warm_ours_s: float
    warm_ts_s: float
    cold_repeats: int
    servers: list[str]
    models: list[str]
    max_seconds: float

    @staticmethod
    def from_env() -> Plan:
        servers = [s.strip() for s in os.environ.get("SERVERS", ",".join(SERVERS)).split(",") if s.strip()]
        unknown = set(servers) - set(SERVERS)
        if unknown:
            raise SystemExit(f"SERVERS: unknown {sorted(unknown)}; choose from {', '.join(SERVERS)}")
        return Plan(
            repeats=env_int("REPEATS", 3),
            clients=env_ints("CLIENTS", "1,4,16"),
            python_clients=env_ints("PY_CLIENTS", "4"),
            tiny_workers=env_ints("TINY_WORKERS", "1,2"),
            bert_workers=env_ints("BERT_WORKERS", "2"),
            bert_batches=env_ints("BERT_BATCHES", "1,4"),
            tiny_seconds=env_float("TINY_SECONDS", 3.0),
            bert_seconds=env_float("BERT_SECONDS", 5.0),
            warm_ours_s=env_float("WARM_OURS", 3.0),
            warm_ts_s=env_float("WARM_TS", 10.0),
            cold_repeats=env_int("COLD_REPEATS", 5),
            servers=servers,
            models=[m.strip() for m in os.environ.get("MODELS", "tiny,bert").split(",") if m.strip()],
            max_seconds=env_float("MAX_SECONDS", 3600.0),
        )

    def body(self, model: str) -> bytes:
        return TINY_BODY if model == "tiny" else BERT_BODY

    def seconds(self, model: str) -> float:
        return self.tiny_seconds if model == "tiny" else self.bert_seconds

    def workers(self, model: str) -> list[int]:
        return self.tiny_workers if model == "tiny" else self.bert_workers

    def batches(self, model: str, kind: str) -> list[int]:
        """Batch sizes a server runs: the tiny model unbatched; TorchServe's defaults are batch 1."""
        if model == "tiny" or kind == "ts":
            return [1]
        return self.bert_batches

    def warm_s(self, kind: str) -> float:
        """Warm-up before a cell's rounds: TorchServe's first rounds run 15-30 % below its later ones."""
        return self.warm_ts_s if kind.startswith("ts") else self.warm_ours_s
