"""Payloads shaped exactly as TorchServe 0.12 delivers them (shared/torchserve-reference §4.2)."""

from __future__ import annotations

import pytest

from ts_notebook.handler import make_request


@pytest.mark.parametrize(
    ("body", "content_type", "row"),
    [
        (b'{"a": 1, "b": [1, 2], "s": "x"}', "application/json", {"body": {"a": 1, "b": [1, 2], "s": "x"}}),
        (b"[1.0, 2.0, 3.0, 4.0]", "application/json", {"body": [1.0, 2.0, 3.0, 4.0]}),
        (b'{"a": 1}', "application/json; charset=utf-8", {"body": {"a": 1}}),
        (b"{not json", "application/json", {"body": bytearray(b"{not json")}),
        (b"\x00\x01\x02binary\xff", "application/octet-stream", {"body": bytearray(b"\x00\x01\x02binary\xff")}),
        (b"rawbytes-no-ct", None, {"body": bytearray(b"rawbytes-no-ct")}),
        (b"hello world", "text/plain", {"body": "hello world"}),
        ("héllo".encode(), "text/plain; charset=utf-8", {"body": "héllo"}),
        (b"a,b\n1,2", "text/csv", {"body": "a,b\n1,2"}),
        (b"a=1&b=two", "application/x-www-form-urlencoded", {"a": bytearray(b"1"), "b": bytearray(b"two")}),
        (b"", None, {"body": bytearray(b"")}),
        (b"caf\xe9", "text/plain", {"body": bytearray(b"caf\xe9")}),  # not UTF-8: passed on raw
    ],
)
def test_body_decoding_matches_torchserve(body: bytes, content_type: str | None, row: dict[str, object]) -> None:
    got = make_request(body, content_type).row
    assert got == row
    assert [type(v) for v in got.values()] == [type(v) for v in row.values()]  # bytearray, not bytes


def test_multipart_fields_by_name() -> None:
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="field1"\r\n\r\nvalue1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file2"; filename="x.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n\x00\x01file-bytes\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="meta"; filename="m.json"\r\n'
        f'Content-Type: application/json\r\n\r\n{{"k": 1}}\r\n--{boundary}--\r\n'
    ).encode("latin-1")
    request = make_request(body, f"multipart/form-data; boundary={boundary}")
    assert request.row == {"field1": bytearray(b"value1"), "file2": bytearray(b"\x00\x01file-bytes"), "meta": {"k": 1}}
    assert "body" not in request.row
    assert request.headers["field1"] == {"content-type": ""}
    assert request.headers["meta"] == {"content-type": "application/json"}


def test_headers_keep_their_case_and_get_torchserves_extras() -> None:
    request = make_request(b'{"a": 1}', "application/json", {"X-Custom": "abc", "x-lower": "def"})
    h = request.headers
    assert h["body"] == {"content-type": "application/json"}
    assert (h["X-Custom"], h["x-lower"], h["explain"], h["url_path"]) == ("abc", "def", "False", "")
    assert h["Content-Type"] == "application/json" and h["Content-Length"] == "8"
    assert "x-custom" not in h  # case-sensitive, like TorchServe
    assert len(request.request_id) == 36
