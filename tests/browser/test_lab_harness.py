"""The browser harness itself: a real ipywidgets Button in real JupyterLab, clicked in Chromium."""

from __future__ import annotations

from pathlib import Path

import nbformat

from tests.browser.lab import KERNEL_NAME, JupyterLab

CELL = """\
import sys
import ipywidgets as widgets
from IPython.display import display

label = widgets.Label(value="waiting").add_class("tsn-harness-label")
button = widgets.Button(description="Press me").add_class("tsn-harness")

def on_click(_):
    label.value = "pressed"

button.on_click(on_click)
display(widgets.VBox([button, label]))
print(sys.executable)
"""


def test_button_click_updates_label(lab: JupyterLab, artifacts: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(nb, str(lab.root_dir / "harness.ipynb"))

    with lab.notebook_page("harness.ipynb") as page:
        page.run_all()
        button = page.wait_for("button.tsn-harness", timeout=60)
        assert button.inner_text().strip() == "Press me"
        page.wait_for_text(".tsn-harness-label", "waiting", timeout=30)
        # the kernel is the interpreter running these tests (the project venv)
        import sys

        assert sys.executable in page.outputs_text()

        page.click("button.tsn-harness")
        page.wait_for_text(".tsn-harness-label", "pressed", timeout=30)
        assert "pressed" in page.page.inner_text(".jp-Notebook")
        shot = page.screenshot(artifacts / "harness.png")
    assert shot.stat().st_size > 0
