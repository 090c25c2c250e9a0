"""The README's handler loop runs as written: its cells, in order, in an empty folder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_cells(title: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_handler_loop_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `from model import Tiny`, as in a notebook's folder
    (tmp_path / "xdg").mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    cells = _section_cells("The handler loop in a few lines")
    assert len(cells) == 4
    ip = InteractiveShell.instance()
    ip.run_line_magic("unload_ext", "ts_notebook")  # a fresh start, as in a new notebook
    # The serving cell runs line by line too, so that the prediction's value can be checked.
    steps = [*cells[:3], *cells[3].strip().splitlines()]
    results = []
    try:
        for step in steps:
            result = ip.run_cell(step)
            assert result.success, f"README cell failed:\n{step}\n{result.error_in_exec or result.error_before_exec}"
            results.append(result.result)
    finally:
        ip.run_line_magic("unload_ext", "ts_notebook")
        sys.modules.pop("model", None)
    trace, answer = results[1], results[5]
    assert trace.ok and len(trace.result) == 2
    assert answer == pytest.approx(trace.result[0])
    assert results[6].startswith("stopped backend pid ")
