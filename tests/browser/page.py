"""One notebook open in JupyterLab in the browser: open it, run its cells, wait for and act on its
elements, take pictures. Failing waits carry the notebook's outputs and a screenshot."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.browser.lab import JupyterLab

_WORKSPACES = itertools.count(1)


# JS helpers: find the open notebook panel whose document path is `path`.
_FIND_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  for (const w of Array.from(app.shell.widgets('main'))) {
    if (w.context && w.context.path === path && w.sessionContext) return w;
  }
  return null;
}
"""


def _js(body: str) -> str:
    """An async page function of (arg) with `findPanel(path)` and `withTimeout(p, ms, what)`."""
    return (
        "async (arg) => {\n"
        f"  const findPanel = {_FIND_PANEL};\n"
        "  const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>"
        " setTimeout(() => rej(new Error('timed out after ' + ms + ' ms: ' + what)), ms))]);\n"
        f"{body}\n"
        "}"
    )


class NotebookPage:
    """One notebook open in JupyterLab in the browser. ``page`` is the Playwright Page.

    Timeouts are in seconds. Failing waits raise AssertionError carrying the text of the notebook's
    outputs (tracebacks included), and save ``<base>/failure-N.png``.
    """

    def __init__(self, lab: JupyterLab, page: Any, name: str) -> None:
        self.lab = lab
        self.page = page
        self.name = name
        self.console: list[str] = []
        self.workspace = ""
        self.url = ""
        self.panel_selector = ".jp-NotebookPanel"
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    # -- opening and running

    def open(self, timeout: float = 120.0) -> None:
        ms = int(timeout * 1000)
        # A workspace of its own per page: JupyterLab otherwise restores the tabs (and restarts the
        # kernels) of notebooks that an earlier page of the same server had open.
        self.workspace = f"tsn-{next(_WORKSPACES)}-{secrets.token_hex(4)}"
        self.url = (
            f"{self.lab.url}/lab/workspaces/{self.workspace}/tree/"
            f"{urllib.parse.quote(self.name)}?token={self.lab.token}"
        )
        self.page.goto(self.url, wait_until="domcontentloaded", timeout=ms)
        try:
            panel_id = self.page.wait_for_function(
                f"(path) => {{ const w = ({_FIND_PANEL})(path); return w ? w.id : null; }}",
                arg=self.name,
                timeout=ms,
                polling=200,
            ).json_value()
            self.panel_selector = f"[id={json.dumps(panel_id)}]"
            self.page.wait_for_selector(f"{self.panel_selector} .jp-Cell", timeout=ms)
            self.page.evaluate(
                _js(
                    """
  const panel = findPanel(arg.path);
  await withTimeout(window.jupyterapp.restored, arg.ms, 'app restored');
  await withTimeout(panel.context.ready, arg.ms, 'document ready');
  await withTimeout(panel.sessionContext.ready, arg.ms, 'session ready');
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel) throw new Error('no kernel started for ' + arg.path + ' (kernel picker shown?)');
  await withTimeout(kernel.info, arg.ms, 'kernel info');
  window.jupyterapp.shell.activateById(panel.id);
"""
                ),
                {"path": self.name, "ms": ms},
            )
        except Exception as e:
            self._fail(f"opening {self.name} failed: {e}")

    def run_all(self, *, timeout: float = 300.0, check: bool = True) -> bool:
        """Run → Run All Cells (command ``notebook:run-all-cells``); returns once every cell's
        execution has replied. With ``check``, a cell that raised fails with the outputs' text."""
        ms = int(timeout * 1000)
        try:
            ok = self.page.evaluate(
                _js(
                    """
  const app = window.jupyterapp;
  const panel = findPanel(arg.path);
  app.shell.activateById(panel.id);
  const result = await withTimeout(
    app.commands.execute('notebook:run-all-cells'), arg.ms, 'run all cells');
  return result !== false;
"""
                ),
                {"path": self.name, "ms": ms},
            )
        except Exception as e:
            self._fail(f"run all cells in {self.name} failed: {e}")
        if check and not ok:
            self._fail(f"a cell of {self.name} raised")
        return bool(ok)

    # -- waiting and acting on elements (CSS selectors)

    def wait_for(self, selector: str, *, timeout: float = 60.0, state: str = "visible") -> Any:
        """Wait until an element matching ``selector`` is in the page (visible by default);
        returns its Playwright Locator (the first match)."""
        loc = self.page.locator(selector).first
        try:
            loc.wait_for(state=state, timeout=int(timeout * 1000))
        except Exception as e:
            self._fail(f"{selector!r} did not appear within {timeout:.0f}s: {type(e).__name__}")
        return loc

    def wait_for_text(self, selector: str, text: str, *, timeout: float = 60.0) -> Any:
        """Wait until an element matching ``selector`` has exactly ``text`` (whitespace-trimmed)."""
        try:
            self.page.wait_for_function(
                """([sel, text]) => Array.from(document.querySelectorAll(sel))
                     .some(e => (e.innerText || e.textContent || '').trim() === text)""",
                arg=[selector, text],
                timeout=int(timeout * 1000),
                polling=200,
            )
        except Exception as e:
            found = self.texts(selector)
            self._fail(
                f"no {selector!r} with text {text!r} within {timeout:.0f}s (found {found!r}): {type(e).__name__}"
            )
        return self.page.locator(selector).filter(has_text=text).first

    def click(self, selector: str, *, timeout: float = 30.0) -> None:
        self.wait_for(selector, timeout=timeout).click(timeout=int(timeout * 1000))

    def fill(self, selector: str, value: str, *, timeout: float = 30.0) -> None:
        """Type ``value`` into an input/textarea (Playwright ``fill``: input events), then fire
        ``change`` and blur it, so widgets with ``continuous_update=False`` sync too."""
        loc = self.wait_for(selector, timeout=timeout)
        loc.fill(value, timeout=int(timeout * 1000))
        loc.dispatch_event("change")
        loc.blur()

    def texts(self, selector: str) -> list[str]:
        return [t.strip() for t in self.page.locator(selector).all_inner_texts()]

    def outputs_text(self) -> str:
        """The text of every output area of the notebook (errors included)."""
        sel = f"{self.panel_selector} .jp-OutputArea-output"
        return "\n---\n".join(t for t in self.texts(sel) if t)

    def resize(self, width: int, height: int, *, timeout: float = 30.0) -> None:
        """Resize the window and return once JupyterLab has laid the notebook out at the new size:
        its shell spans the new width and the panel's size held still from one frame to the next."""
        self.page.set_viewport_size({"width": width, "height": height})
        try:
            self.page.evaluate(
                _js(
                    """
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const panel = findPanel(arg.path);
  const shell = document.getElementById('main');
  const size = () => { const b = panel.node.getBoundingClientRect(); return b.width + 'x' + b.height; };
  const end = performance.now() + arg.ms;
  const settled = async () => {
    for (let last = null; performance.now() < end; await frame()) {
      const now = size();
      if (Math.round(shell.getBoundingClientRect().width) === arg.width && now === last) return;
      last = now;
    }
  };
  await withTimeout(settled(), arg.ms, 'the layout at width ' + arg.width);
"""
                ),
                {"path": self.name, "width": width, "ms": int(timeout * 1000)},
            )
        except Exception as e:
            self._fail(f"JupyterLab did not lay out at {width}x{height} within {timeout:.0f}s: {e}")

    def screenshot(self, path: str | os.PathLike[str], *, full_page: bool = False) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(p), full_page=full_page)
        return p

    def _fail(self, message: str) -> None:
        shot = ""
        try:
            n = len(list(self.lab.base.glob("failure-*.png"))) + 1
            shot = f"\nscreenshot: {self.screenshot(self.lab.base / f'failure-{n}.png')}"
        except Exception:
            pass
        try:
            outputs = self.outputs_text()
        except Exception:
            outputs = "<unreadable>"
        console = "\n".join(self.console[-20:])
        raise AssertionError(
            f"{message}\noutputs:\n{outputs or '<none>'}\nbrowser console (last 20):\n{console}"
            f"{shot}\nserver log: {self.lab.log_path}"
        )
