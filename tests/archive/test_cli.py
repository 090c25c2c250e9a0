from __future__ import annotations

from pathlib import Path

import pytest

from ts_notebook.archive import open_archive
from ts_notebook.archive.cli import main


def test_cli_builds_with_archiver_flags(assets: Path, in_tmp: Path) -> None:
    rc = main(
        ["--model-name", "cli", "-v", "1.0", "--handler", f"{assets}/func_handler:my_entry", "--archive-format", "tgz"]
    )
    assert rc == 0
    assert open_archive(in_tmp / "cli.tar.gz").manifest.handler == "func_handler:my_entry"


def test_cli_reports_errors_and_writes_nothing(assets: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-name", "cli", "-v", "1", "--handler", "nope.py"]) == 1
    assert capsys.readouterr().err.startswith("ERROR - --handler 'nope.py': no file 'nope.py'")
    assert list(in_tmp.iterdir()) == []


def test_cli_force_warns_like_the_reference(assets: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model-name", "cli", "-v", "1", "--handler", str(assets / "func_handler.py")]
    assert main(args) == 0
    assert main([*args, "-f"]) == 0
    assert capsys.readouterr().err == f"WARNING - Overwriting {in_tmp}/cli.mar ...\n"
