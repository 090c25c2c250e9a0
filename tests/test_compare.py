"""The answer-comparison rules: tolerances, paths, NaN, text vs bytes, streamed chunks, the status."""

from __future__ import annotations

import json
import math

import pytest

from ts_notebook.compare import (
    Answer,
    compare_answers,
    compare_bodies,
    compare_chunks,
    compare_values,
    decode_body,
)


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2).encode()


def test_floats_within_the_tolerances_are_the_same() -> None:
    assert compare_values({"p": [0.1, 2.0]}, {"p": [0.1 + 1e-9, 2.0 * (1 + 1e-6)]}).equal
    assert not compare_values(1.0, 1.001).equal
    assert compare_values(1.0, 1.001, rtol=1e-2).equal
    assert compare_values(0.0, 1e-9).equal  # atol covers values near zero
    assert not compare_values(0.0, 1e-9, atol=0.0).equal


def test_ints_and_floats_compare_numerically_and_two_ints_exactly() -> None:
    assert compare_values(1, 1.0).equal
    assert compare_values([2.0], [2]).equal
    found = compare_values(1_000_000, 1_000_001)
    assert not found.equal
    assert found.diff == "$: expected 1000000, got 1000001 (two integers are compared exactly)"
    assert not compare_values(True, 1).equal  # JSON's true is not a number
    assert not compare_values("1", 1).equal


def test_nan_equals_nan_and_infinities_themselves() -> None:
    assert compare_values([math.nan], [math.nan]).equal
    assert not compare_values(math.nan, 1.0).equal
    assert compare_values(math.inf, math.inf).equal
    assert not compare_values(math.inf, -math.inf).equal
    # Python's json writes NaN and Infinity; a served answer holding them still compares
    assert compare_bodies(_json({"x": math.nan}), b'{"x": NaN}').equal


def test_the_first_differing_path_and_both_values() -> None:
    expected = {"label": "cat", "scores": [0.9, 0.05, 0.03, 0.02], "meta": {"top k": 2}}
    actual = {"label": "cat", "scores": [0.9, 0.05, 0.03, 0.5], "meta": {"top k": 3}}
    found = compare_values(expected, actual)
    assert (found.equal, found.path, found.expected, found.actual) == (False, "$.scores[3]", 0.02, 0.5)
    assert found.diff.startswith("$.scores[3]: expected 0.02, got 0.5 (|difference| 0.48 > atol")
    found = compare_values(expected["meta"], actual["meta"])
    assert found.path == '$["top k"]'


def test_dict_keys_and_list_lengths_are_exact() -> None:
    found = compare_values({"a": 1, "b": 2}, {"a": 1})
    assert (found.path, found.expected, found.actual) == ("$.b", 2, "<missing>")
    assert found.diff == "$.b: the key is missing; expected 2"
    found = compare_values({"a": 1}, {"a": 1, "c": [1]})
    assert found.diff == "$.c: an extra key, not in the served answer: [1]"
    found = compare_values({"x": [1, 2, 3]}, {"x": [1, 2]})
    assert found.path == "$.x"
    assert found.diff.splitlines()[0] == "$.x: expected a list of 3 items, got 2"
    assert compare_values({"a": 1, "b": 2}, {"b": 2, "a": 1}).equal  # key order is not compared


def test_text_is_compared_exactly_with_a_readable_diff() -> None:
    found = compare_bodies(b"hello\nworld\n", b"hello\nw0rld\n")
    assert not found.equal
    lines = found.diff.splitlines()
    assert lines[0] == "$: the text differs at character 7 (line 2, column 2)"
    assert "-world" in lines and "+w0rld" in lines
    assert not compare_bodies(b"hello ", b"hello").equal  # no tolerance for text: a space counts
    assert compare_bodies(b"caf\xc3\xa9", b"caf\xc3\xa9").equal


def test_json_vs_text_vs_bytes_is_decided_by_content_type_then_by_content() -> None:
    assert decode_body(b'{"a": 1}').kind == "json"
    assert decode_body(b"plain words").kind == "text"
    assert decode_body(b"\xff\x00\x01").kind == "bytes"
    assert decode_body(b'{"a": 1}', "text/plain; charset=utf-8") == decode_body(b'{"a": 1}', "text/plain")
    assert decode_body(b'{"a": 1}', "text/plain").kind == "text"
    assert decode_body(b"1.0", "application/octet-stream").kind == "bytes"
    assert decode_body(b"not json", "application/json").kind == "text"
    # JSON unless the type says text: then "1.0" and "1.00" differ, as a user of a text answer expects
    assert compare_bodies(b"1.0", b"1.00").equal
    assert not compare_bodies(b"1.0", b"1.00", "text/plain").equal
    assert not compare_bodies(b"1.0", b"1.00", "application/octet-stream").equal


def test_bytes_are_compared_exactly_and_the_offset_is_named() -> None:
    found = compare_bodies(b"\x00\x01\x02\xff", b"\x00\x01\x03\xff")
    assert not found.equal
    assert found.diff.splitlines()[0] == "$: the bytes differ at offset 2 (4 bytes served, 4 new)"
    found = compare_bodies(b"\xff\xfe", b"\xff\xfe\x00")
    assert "offset 2 (2 bytes served, 3 new)" in found.diff


def test_a_json_answer_that_became_text_differs_in_kind() -> None:
    found = compare_bodies(_json({"a": 1}), b"a = 1")
    assert not found.equal
    assert found.diff.splitlines()[0] == "$: expected a json answer, got text"


def test_status_is_compared_first() -> None:
    found = compare_answers(Answer(200, b"[1]"), Answer(503, b"Prediction failed"))
    assert (found.path, found.expected, found.actual) == ("status", 200, 503)
    assert found.diff.splitlines() == [
        "status: expected 200, got 503",
        "expected body: [1]",
        "actual body:   Prediction failed",
    ]
    assert compare_answers(Answer(503, b"Prediction failed"), Answer(503, b"Prediction failed")).equal


def test_a_streamed_answer_is_compared_chunk_by_chunk() -> None:
    served = Answer(200, b'{"done": true}', chunks=(b'{"token": "a", "p": 0.5}', b'{"token": "b", "p": 0.25}'))
    same = Answer(200, b'{"done": true}', chunks=(b'{"token": "a", "p": 0.5000001}', b'{"token": "b", "p": 0.25}'))
    assert compare_answers(served, same, rtol=1e-5).equal
    other = Answer(200, b'{"done": true}', chunks=(b'{"token": "a", "p": 0.5}', b'{"token": "c", "p": 0.25}'))
    found = compare_answers(served, other)
    assert (found.path, found.expected, found.actual) == ("chunk[1]:$.token", "b", "c")
    found = compare_chunks([b"a", b"b"], [b"a"])
    assert found.diff == "chunks: expected 2 streamed chunks, got 1 (the first 1 are the same)"
    # a recorded answer without its chunks is compared on its final body alone
    assert compare_answers(Answer(200, b'{"done": true}'), same).equal


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b"\x00"])
def test_identical_bodies_are_the_same(body: bytes) -> None:
    assert compare_bodies(body, body).equal
    assert str(compare_bodies(body, body)) == "answers are the same"
