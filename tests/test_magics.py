"""The magics through a real IPython shell, with the exact messages a user sees."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ts_notebook
from ts_notebook.archive import ArchiveInfo
from ts_notebook.archive.inspect import InspectReport


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ts_notebook")
    yield ip
    ip.run_line_magic("unload_ext", "ts_notebook")


LOAD_EXT = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "ts_notebook")
assert {"mar_build", "mar_inspect", "ts_serve"} <= set(ip.magics_manager.magics["line"])
heavy = sorted({"torch", "aiohttp", "requests", "ipywidgets", "ts_notebook.backend.server"} & set(sys.modules))
sys.exit(f"%load_ext imported {heavy}" if heavy else 0)
"""


def test_load_ext_only_registers_magics() -> None:
    """``%load_ext`` in a fresh kernel imports nothing heavy: nothing starts until a magic runs."""
    out = subprocess.run([sys.executable, "-c", LOAD_EXT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# Imports each named module in turn in a fresh interpreter; exits naming the first that pulled in
# IPython or ipywidgets.
IMPORT_EACH = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    ui = [m for m in ("IPython", "ipywidgets") if m in sys.modules]
    if ui:
        sys.exit(f"importing {name} imported {' and '.join(ui)}")
"""


NOTEBOOK_LAYER = ("ts_notebook.magics", "ts_notebook.widgets")  # the only packages that may import them


def core_modules() -> list[str]:
    """Every module of the package but the notebook layer's and ``__main__`` modules (importing those runs them)."""
    found = [m.name for m in pkgutil.walk_packages(ts_notebook.__path__, "ts_notebook.")]
    return ["ts_notebook"] + [
        name
        for name in found
        if not any(name == pkg or name.startswith(pkg + ".") for pkg in NOTEBOOK_LAYER)
        and not name.endswith("__main__")
    ]


def test_core_imports_without_ipython_or_ipywidgets() -> None:
    """Scripts, the archiver CLI and the backend use the core without IPython installed."""
    names = core_modules()
    assert {"ts_notebook.archive.build", "ts_notebook.launcher", "ts_notebook.backend.server"} <= set(names)
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *names],
        cwd=Path(ts_notebook.__file__).parents[1],  # this checkout's package, whatever is installed
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr


def test_mar_build_returns_the_archive_description(shell: InteractiveShell, assets: Path, in_tmp: Path) -> None:
    info = shell.run_line_magic(
        "mar_build",
        f"--model-name tiny --version 1.0 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
        f"--handler {assets}/handler.py --extra-files {assets}/index_to_name.json -c {assets}/model-config.yaml",
    )
    assert isinstance(info, ArchiveInfo)
    assert info.path == in_tmp / "tiny.mar"
    assert set(info.names) == {"model.py", "tiny_state.pth", "handler.py", "index_to_name.json", "model-config.yaml"}
    text = repr(info)
    assert text.splitlines()[1] == "model tiny version 1.0  handler handler.py  runtime python  manifest current"
    assert "tiny_state.pth" in text
    html = info._repr_html_()
    assert "class='tsn-archive'" in html and "MANIFEST.json" in html


def test_mar_build_user_error_is_a_usage_error(shell: InteractiveShell, assets: Path, in_tmp: Path) -> None:
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("mar_build", f"--model-name 'bad name' -v 1 --handler {assets}/func_handler.py")
    assert type(err.value) is UsageError  # IPython hides the traceback only for exactly this type
    assert str(err.value).startswith("model name 'bad name' is not allowed")


def test_mar_build_requires_the_archivers_required_flags(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="the following arguments are required: -v/--version"):
        shell.run_line_magic("mar_build", "--model-name x --handler base_handler")


def test_mar_build_formats(shell: InteractiveShell, assets: Path, in_tmp: Path) -> None:
    info = shell.run_line_magic(
        "mar_build", f"--model-name t -v 1 --handler {assets}/func_handler.py --archive-format tgz"
    )
    assert info.path == in_tmp / "t.tar.gz"
    assert info.format == "tgz"


def test_mar_inspect_extracts_and_exports(shell: InteractiveShell, assets: Path, in_tmp: Path) -> None:
    shell.run_line_magic(
        "mar_build",
        f"--model-name tiny -v 1 --model-file {assets}/model.py --serialized-file {assets}/tiny_state.pth "
        f"--handler {assets}/handler.py",
    )
    report = shell.run_line_magic("mar_inspect", "tiny.mar --extract model_dir --export-model tiny.pt")
    assert isinstance(report, InspectReport)
    assert report.problems == ()
    assert (in_tmp / "model_dir" / "handler.py").is_file()
    assert (in_tmp / "tiny.pt").is_file()
    lines = repr(report).splitlines()
    assert lines[-3:] == [
        "no problems found",
        "extracted to model_dir",
        "exported tiny_state.pth -> tiny.pt (state_dict: loaded strictly into TinyNet() from model.py)",
    ]


def test_mar_inspect_of_a_missing_file(shell: InteractiveShell, in_tmp: Path) -> None:
    with pytest.raises(UsageError, match=r"^nope.mar: no such archive\. Pass the path of a \.mar"):
        shell.run_line_magic("mar_inspect", "nope.mar")


def test_help_is_the_docstring(shell: InteractiveShell) -> None:
    doc = shell.find_line_magic("mar_build").__doc__
    assert "same flags and meaning as torch-model-archiver 0.12" in doc
    assert "--serialized-file SERIALIZED_FILE" in doc
    assert "--model-path MODEL_PATH" in doc


def test_mar_check_finds_the_cause_and_says_ok_when_fixed(shell: InteractiveShell, in_tmp: Path) -> None:
    from tests.doctor.cases import pairs

    broken, fixed, cause = pairs()["missing_helper"]
    report = shell.run_line_magic("mar_check", str(broken.build(in_tmp / "broken")))
    assert cause in report.causes() and "--extra-files helper.py" in repr(report)
    assert "<table>" in report._repr_html_()
    assert shell.run_line_magic("mar_check", f"{fixed.build(in_tmp / 'fixed')} --no-run").ok
    with pytest.raises(UsageError, match=r"^nope: no such archive, and no backend is running"):
        shell.run_line_magic("mar_check", "nope")
