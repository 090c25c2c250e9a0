"""The serving benchmark's settings (from the environment, see ``bench_serving.py``) and its time budget."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from common import env_float, env_int, env_ints

# The BERT-sized setting is fixed: the target is stated for 2 workers and 4 clients.
BERT_WORKERS, BERT_CLIENTS = 2, 4


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
