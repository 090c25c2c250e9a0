"""Served requests as tests: ``write_tests`` writes a model's recorded requests as a pytest module,
and the functions that module calls replay them and compare the answers (``ts_notebook.compare``).

A generated module imports only pytest, the stdlib and this package, and uses only the names here.
"""

from ts_notebook.compare import Answer, Comparison, compare_answers
from ts_notebook.golden.payloads import GoldenError, RecordedRequest, load_request
from ts_notebook.golden.run import NewAnswer, dry_run_answer, failure_text, inference_key, post_answer, unpack
from ts_notebook.golden.write import GoldenTests, write_tests

__all__ = [
    "Answer",
    "Comparison",
    "GoldenError",
    "GoldenTests",
    "NewAnswer",
    "RecordedRequest",
    "compare_answers",
    "dry_run_answer",
    "failure_text",
    "inference_key",
    "load_request",
    "post_answer",
    "unpack",
    "write_tests",
]
