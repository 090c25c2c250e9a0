"""Comparing a served answer with a new one: the rules the golden tests and the guarded reload share.

An answer is its status, its body's bytes and, when streamed, the chunks sent before it. A body is
read the way a user expects: by its content type when one is known (JSON, text, or bytes), otherwise
as JSON if it parses, else as UTF-8 text, else as bytes. Then:

- JSON values are compared structurally: dict keys and list lengths exactly, strings and booleans
  exactly, two ints exactly (they are ids and counts more often than measurements), and a float with
  any number within ``atol + rtol * max(|expected|, |actual|)``; NaN equals NaN, an infinity itself.
- text and bytes are compared exactly;
- a streamed answer chunk by chunk (the same number of chunks, then each as a body).

The result names the first difference: its path (``$.scores[3]``, ``status``, ``chunk[2]:$.token``),
both values there and a short diff a person reads in a failed test. Stdlib only.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

RTOL = 1e-5  # numpy.isclose's defaults: float32 models replayed in another batch size stay within them
ATOL = 1e-8
DIFF_LINES = 12  # a failed test shows this many lines of a text diff, not a page
_MISSING = "<missing>"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BINARY_TYPES = ("application/octet-stream", "image/", "audio/", "video/", "application/x-")


@dataclass(frozen=True)
class Answer:
    """What a client got: the status, the final body, the streamed chunks before it (None: not streamed
    or not recorded) and the Content-Type (None when the server sent none, as TorchServe usually does)."""

    status: int
    body: bytes = b""
    chunks: tuple[bytes, ...] | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Decoded:
    """A body as it is compared: ``kind`` is "json", "text" or "bytes"."""

    kind: str
    value: object


@dataclass(frozen=True)
class Comparison:
    """Whether two answers are the same under the rules, and if not, the first place they differ."""

    equal: bool
    path: str = ""  # "" when equal
    expected: object = None
    actual: object = None
    diff: str = ""  # what a person reads: the path, both values, a short text diff

    def __bool__(self) -> bool:
        return self.equal

    def to_text(self) -> str:
        return "answers are the same" if self.equal else self.diff

    def __str__(self) -> str:
        return self.to_text()


SAME = Comparison(True)


def decode_body(body: bytes, content_type: str | None = None) -> Decoded:
    """Read a body as JSON, text or bytes: by ``content_type`` when given, else by trying them in turn."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base and (base.startswith(_BINARY_TYPES) or base == "application/pdf"):
        return Decoded("bytes", body)
    if base and not (base == "application/json" or base.endswith("+json")):
        text = _utf8(body)
        return Decoded("text", text) if text is not None else Decoded("bytes", body)
    try:
        return Decoded("json", json.loads(body))
    except (ValueError, UnicodeDecodeError):
        text = _utf8(body)
        return Decoded("text", text) if text is not None else Decoded("bytes", body)


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def compare_answers(expected: Answer, actual: Answer, *, rtol: float = RTOL, atol: float = ATOL) -> Comparison:
    """The status, then the chunks when both answers have them, then the final bodies.

    The content type used for both bodies is the expected one, else the actual one: a served answer
    recorded without a Content-Type is read the way the new one says it is meant.
    """
    if expected.status != actual.status:
        return _differ(
            "status",
            expected.status,
            actual.status,
            f"status: expected {expected.status}, got {actual.status}\n"
            f"expected body: {_short(expected.body)}\nactual body:   {_short(actual.body)}",
        )
    content_type = expected.content_type or actual.content_type
    if expected.chunks is not None and actual.chunks is not None:
        found = compare_chunks(expected.chunks, actual.chunks, content_type, rtol=rtol, atol=atol)
        if not found.equal:
            return found
    return compare_bodies(expected.body, actual.body, content_type, rtol=rtol, atol=atol)


def compare_chunks(
    expected: Sequence[bytes],
    actual: Sequence[bytes],
    content_type: str | None = None,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Comparison:
    """A streamed answer chunk by chunk: the same number of chunks, each the same under the body rules."""
    for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
        found = compare_bodies(e, a, content_type, rtol=rtol, atol=atol, root=f"chunk[{i}]:$")
        if not found.equal:
            return found
    if len(expected) != len(actual):
        return _differ(
            "chunks",
            len(expected),
            len(actual),
            f"chunks: expected {len(expected)} streamed chunks, got {len(actual)} (the first "
            f"{min(len(expected), len(actual))} are the same)",
        )
    return SAME


def compare_bodies(
    expected: bytes,
    actual: bytes,
    content_type: str | None = None,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    root: str = "$",
) -> Comparison:
    """Two bodies read as ``decode_body`` reads them, compared as JSON, text or bytes."""
    if expected == actual:
        return SAME
    e, a = decode_body(expected, content_type), decode_body(actual, content_type)
    if e.kind != a.kind:
        return _differ(
            root,
            e.value,
            a.value,
            f"{root}: expected a {e.kind} answer, got {a.kind}\n"
            f"expected: {_short(expected)}\nactual:   {_short(actual)}",
        )
    if e.kind == "json":
        return compare_values(e.value, a.value, rtol=rtol, atol=atol, path=root)
    if e.kind == "text":
        assert isinstance(e.value, str) and isinstance(a.value, str)
        return compare_text(e.value, a.value, root)
    return compare_bytes(expected, actual, root)


def compare_values(
    expected: object, actual: object, *, rtol: float = RTOL, atol: float = ATOL, path: str = "$"
) -> Comparison:
    """Two JSON values (as ``json.loads`` gives them) under the module's rules; the first difference."""
    if _is_number(expected) and _is_number(actual):
        assert isinstance(expected, int | float) and isinstance(actual, int | float)
        if _close(expected, actual, rtol, atol):
            return SAME
        return _value_differs(path, expected, actual, _tolerance_note(expected, actual, rtol, atol))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return _compare_dicts(expected, actual, rtol, atol, path)
    if isinstance(expected, list) and isinstance(actual, list):
        return _compare_lists(expected, actual, rtol, atol, path)
    if type(expected) is type(actual) and expected == actual:
        return SAME
    return _value_differs(path, expected, actual)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # JSON's true is not 1


def _close(expected: float, actual: float, rtol: float, atol: float) -> bool:
    if isinstance(expected, int) and isinstance(actual, int):
        return expected == actual
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    if math.isinf(expected) or math.isinf(actual):
        return expected == actual
    return abs(expected - actual) <= atol + rtol * max(abs(expected), abs(actual))


def _tolerance_note(expected: float, actual: float, rtol: float, atol: float) -> str:
    if isinstance(expected, int) and isinstance(actual, int):
        return "two integers are compared exactly"
    if any(isinstance(v, float) and not math.isfinite(v) for v in (expected, actual)):
        return ""
    return f"|difference| {abs(expected - actual):.3g} > atol {atol:g} + rtol {rtol:g} * |value|"


def _compare_dicts(
    expected: dict[str, object], actual: dict[str, object], rtol: float, atol: float, path: str
) -> Comparison:
    missing = [k for k in expected if k not in actual]
    if missing:
        at = _key_path(path, missing[0])
        return _differ(
            at, expected[missing[0]], _MISSING, f"{at}: the key is missing; expected {_show(expected[missing[0]])}"
        )
    extra = [k for k in actual if k not in expected]
    if extra:
        at = _key_path(path, extra[0])
        return _differ(
            at, _MISSING, actual[extra[0]], f"{at}: an extra key, not in the served answer: {_show(actual[extra[0]])}"
        )
    for key, value in expected.items():
        found = compare_values(value, actual[key], rtol=rtol, atol=atol, path=_key_path(path, key))
        if not found.equal:
            return found
    return SAME


def _compare_lists(expected: list[object], actual: list[object], rtol: float, atol: float, path: str) -> Comparison:
    if len(expected) != len(actual):
        return _differ(
            path,
            expected,
            actual,
            f"{path}: expected a list of {len(expected)} items, got {len(actual)}\n"
            f"expected: {_show(expected)}\nactual:   {_show(actual)}",
        )
    for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
        found = compare_values(e, a, rtol=rtol, atol=atol, path=f"{path}[{i}]")
        if not found.equal:
            return found
    return SAME


def compare_text(expected: str, actual: str, path: str = "$") -> Comparison:
    """Two texts, exactly; the diff says where the first difference is and shows a short unified diff."""
    if expected == actual:
        return SAME
    offset = _first_difference(expected, actual)
    line = expected.count("\n", 0, offset) + 1
    column = offset - (expected.rfind("\n", 0, offset) + 1) + 1
    lines = list(
        difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "served answer", "new answer", n=1, lineterm=""
        )
    )
    shown = lines[:DIFF_LINES] + (
        [f"... ({len(lines) - DIFF_LINES} more diff lines)"] if len(lines) > DIFF_LINES else []
    )
    if not any(line.startswith(("+", "-")) and not line.startswith(("+++", "---")) for line in lines):
        shown = [f"expected: {_show(expected)}", f"actual:   {_show(actual)}"]  # only line ends differ
    head = f"{path}: the text differs at character {offset} (line {line}, column {column})"
    return _differ(path, expected, actual, "\n".join([head, *shown]))


def compare_bytes(expected: bytes, actual: bytes, path: str = "$") -> Comparison:
    """Two binary bodies, exactly; the diff gives the first differing offset and the bytes around it."""
    if expected == actual:
        return SAME
    offset = _first_difference(expected, actual)
    start = max(0, offset - 8)
    return _differ(
        path,
        expected,
        actual,
        f"{path}: the bytes differ at offset {offset} ({len(expected)} bytes served, {len(actual)} new)\n"
        f"expected[{start}:]: {expected[start : start + 32].hex(' ')}\n"
        f"actual[{start}:]:   {actual[start : start + 32].hex(' ')}",
    )


def _first_difference(expected: Sequence[object], actual: Sequence[object]) -> int:
    """The first index where two sequences differ (the shorter's length when one extends the other)."""
    pairs = enumerate(zip(expected, actual, strict=False))
    return next((i for i, (e, a) in pairs if e != a), min(len(expected), len(actual)))


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"


def _value_differs(path: str, expected: object, actual: object, note: str = "") -> Comparison:
    text = f"{path}: expected {_show(expected)}, got {_show(actual)}" + (f" ({note})" if note else "")
    return _differ(path, expected, actual, text)


def _differ(path: str, expected: object, actual: object, diff: str) -> Comparison:
    return Comparison(False, path, expected, actual, diff)


def _show(value: object, limit: int = 200) -> str:
    """A value as JSON (or repr for what JSON cannot write), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(body: bytes, limit: int = 200) -> str:
    """A body's head as text when it is UTF-8 (a cut inside a character is replaced), else its repr."""
    shown = repr(body[:limit]) if _utf8(body) is None else body[:limit].decode("utf-8", "replace")
    return shown + ("…" if len(body) > limit else "")
