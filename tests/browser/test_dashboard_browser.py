"""The serving dashboard in a real browser: JupyterLab on 127.0.0.1 with a token, headless Chromium.

A notebook starts the backend, registers a model and shows the dashboard; the test sends a request
with the try-it form and checks that the answer and a new request-log row (with the data row the
handler received) appear, and that the handler's log lines show; then it saves a screenshot in
tests/browser/artifacts/dashboard.png (``make docs-screenshot`` copies it to docs/dashboard.png for
the README: no test writes a tracked file).
"""

from __future__ import annotations

from pathlib import Path

from tests.assets import write_assets
from tests.browser.lab import JupyterLab
from ts_notebook.archive import build_archive


def test_dashboard_try_it_in_a_real_browser(lab: JupyterLab, artifacts: Path) -> None:
    folder = lab.root_dir
    assets = write_assets(folder / "assets")
    handler = folder / "assets" / "chatty_handler.py"
    handler.write_text(
        (assets / "handler.py")
        .read_text()
        .replace(
            "    def preprocess(self, data):\n",
            "    def preprocess(self, data):\n        import logging\n"
            "        logging.getLogger('chatty').info('preprocess got %r', data)\n",
        )
    )
    build_archive(
        "tiny",
        "1.0",
        str(handler),
        model_file=str(assets / "model.py"),
        serialized_file=str(assets / "tiny_state.pth"),
        extra_files=str(assets / "index_to_name.json"),
        export_path=folder,
    )
    lab.write_notebook(
        "dashboard_e2e.ipynb",
        [
            "%load_ext ts_notebook",
            "%ts_serve start --model-store store\n%ts_serve register tiny.mar",
            "dash = %ts_serve dashboard --interval 0.5\ndash",
        ],
    )
    (folder / "store").mkdir(exist_ok=True)
    with lab.notebook_page("dashboard_e2e.ipynb", timeout=180) as nb:
        nb.run_all(timeout=240, check=True)
        nb.wait_for(".tsn-dashboard", timeout=60)
        nb.wait_for(".tsn-model-row", timeout=60)
        assert any("tiny" in t for t in nb.texts(".tsn-model-row"))
        before = len(nb.texts(".tsn-request-row"))
        nb.fill(".tsn-try-it-payload textarea", '{"input": [4, 3, 2, 1]}')
        nb.click(".tsn-try-it-send button, button.tsn-try-it-send")
        nb.wait_for(".tsn-try-it-answer", timeout=60)
        answer = " ".join(nb.texts(".tsn-try-it-response"))
        assert "answer 200" in answer and "[" in answer
        nb.page.wait_for_function(f"document.querySelectorAll('.tsn-request-row').length > {before}", timeout=60_000)
        rows = nb.texts(".tsn-request-row")
        assert any("{'body': {'input': [4, 3, 2, 1]}}" in r and "200" in r for r in rows), rows
        nb.page.wait_for_function(
            "Array.from(document.querySelectorAll('.tsn-log-lines'))"
            ".some(e => e.textContent.includes('preprocess got'))",
            timeout=60_000,
        )
        nb.resize(1400, 1500)  # the whole dashboard in one picture
        shot = nb.screenshot(artifacts / "dashboard.png", full_page=True)
    assert shot.stat().st_size > 0
