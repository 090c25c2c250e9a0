"""The handlers the live benchmark edits: the serving benchmark's tiny and BERT-sized handlers whose
answers carry a marker, so each edit is seen the moment it is served. An edit changes the marker
(postprocess only); a "deep" edit also changes ``initialize`` (the value it stores), so the weights
load again. Both handlers have an ``initialize`` of their own that stores that value."""

from __future__ import annotations

from model_code import BERT_HANDLER, TINY_HANDLER

MARK = "__mark__"

_TINY_TAIL = "        return data.tolist()\n"
_BERT_TAIL = '        return [{"label": int(p.argmax()), "scores": [round(float(x), 6) for x in p]} for p in probs]\n'
assert _TINY_TAIL in TINY_HANDLER and _BERT_TAIL in BERT_HANDLER

_TINY_NEW = f"        return [{{'mark': {MARK!r}, 'y': row}} for row in data.tolist()]\n"
_BERT_NEW = f"        return [{{'mark': {MARK!r}, 'label': int(p.argmax())}} for p in probs]\n"
TEMPLATES = {"tiny": TINY_HANDLER.replace(_TINY_TAIL, _TINY_NEW), "bert": BERT_HANDLER.replace(_BERT_TAIL, _BERT_NEW)}
# TinyHandler has no initialize of its own (BaseHandler's loads the weights); BertHandler has one.
_DEEP = {
    "tiny": ("class TinyHandler(BaseHandler):\n", "class TinyHandler(BaseHandler):\n    def initialize(self, ctx):\n"
             "        super().initialize(ctx)\n        self.edit = EDIT\n\n"),
    "bert": ("        self.initialized = True\n", "        self.initialized = True\n        self.edit = EDIT\n"),
}  # fmt: skip


def handler_code(which: str, mark: str, init: str = "0") -> str:
    """The handler answering with ``mark`` whose initialize stores ``init`` (change it for a deep edit)."""
    code = TEMPLATES[which].replace(repr(MARK), repr(mark))
    old, new = _DEEP[which]
    assert old in code
    return code.replace(old, new.replace("EDIT", repr(init)), 1)


def has_mark(body: bytes, mark: str) -> bool:
    return f'"mark": "{mark}"'.encode() in body or f"'mark': '{mark}'".encode() in body
