"""``data`` and headers exactly as the handler sees them (REPORT §4.2): the probe's "echo" mode
returns repr(data[0]), the type of each value, and the request's headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.backend.conftest import Models
from tests.backend.helpers import Backend


@pytest.fixture(scope="module")
def echo(backend: Backend) -> Iterator[str]:
    m = Models(backend)
    try:
        m.register("probe.mar", "echo", initial_workers=1)
        yield "echo"
    finally:
        m.cleanup()


def _echo(backend: Backend, body: bytes | None, content_type: str | None, **kw: Any) -> dict[str, Any]:
    reply = backend.predict("echo", body, mode="echo", content_type=content_type, **kw)
    assert reply.status == 200, reply.body
    seen: dict[str, Any] = reply.json()
    assert seen["request_id"] == reply.headers["x-request-id"]
    return seen


@pytest.mark.parametrize(
    ("body", "content_type", "row"),
    [
        (b'{"a": 1, "b": [1, 2], "s": "x"}', "application/json", "{'body': {'a': 1, 'b': [1, 2], 's': 'x'}}"),
        (b"[1.0, 2.0, 3.0, 4.0]", "application/json", "{'body': [1.0, 2.0, 3.0, 4.0]}"),
        (b'{"a": 1}', "application/json; charset=utf-8", "{'body': {'a': 1}}"),
        (b"{not json", "application/json", "{'body': bytearray(b'{not json')}"),
        (b"\x00\x01\x02binary\xff", "application/octet-stream", "{'body': bytearray(b'\\x00\\x01\\x02binary\\xff')}"),
        (b"rawbytes-no-ct", None, "{'body': bytearray(b'rawbytes-no-ct')}"),
        (b"hello world", "text/plain", "{'body': 'hello world'}"),
        ("héllo".encode(), "text/plain; charset=utf-8", "{'body': 'héllo'}"),
        (b"a,b\n1,2", "text/csv", "{'body': 'a,b\\n1,2'}"),
        (b"a=1&b=two", "application/x-www-form-urlencoded", "{'a': bytearray(b'1'), 'b': bytearray(b'two')}"),
        (b"", "application/json", "{'body': bytearray(b'')}"),
    ],
)
def test_body_decoding(backend: Backend, echo: str, body: bytes, content_type: str | None, row: str) -> None:
    assert _echo(backend, body, content_type)["repr"] == row


def test_multipart_fields_by_name(backend: Backend, echo: str) -> None:
    boundary = "probe-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="field1"\r\n\r\n'
            "value1\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file2"; filename="x.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"\x00\x01file-bytes\r\n"
        + (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="meta"; filename="m.json"\r\n'
            "Content-Type: application/json\r\n\r\n"
            '{"k": 1}\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    seen = _echo(backend, body, f"multipart/form-data; boundary={boundary}")
    expected = "{'field1': bytearray(b'value1'), 'file2': bytearray(b'\\x00\\x01file-bytes'), 'meta': {'k': 1}}"
    assert seen["repr"] == expected
    assert seen["types"] == {"field1": "bytearray", "file2": "bytearray", "meta": "dict"}
    headers = seen["headers"]
    assert headers["field1"] == {"content-type": ""}
    assert headers["file2"] == {"content-type": "application/octet-stream"}
    assert headers["meta"] == {"content-type": "application/json"}
    assert "body" not in headers


def test_headers_keep_their_case(backend: Backend, echo: str) -> None:
    seen = _echo(
        backend,
        b'{"q": true}',
        "application/json",
        headers={"X-Custom": "abc", "x-lower": "def"},
    )
    headers = seen["headers"]
    assert headers["X-Custom"] == "abc"
    assert headers["x-lower"] == "def"
    assert headers["X-Mode"] == "echo"
    assert headers["Content-Type"] == "application/json"
    assert headers["body"] == {"content-type": "application/json"}
    assert headers["explain"] == "False"
    assert headers["url_path"] == ""
    assert "x-custom" not in headers
    # get_request_header is a case-sensitive lookup
    assert (seen["X-Custom"], seen["x-custom"]) == ("abc", None)


def test_query_params_dropped_and_url_path(backend: Backend, echo: str) -> None:
    seen = _echo(backend, b'{"q": true}', "application/json", path="/predictions/echo?foo=bar&n=1&foo=baz")
    assert seen["repr"] == "{'body': {'q': True}}"
    seen = _echo(backend, b"{}", "application/json", path="/predictions/echo/1.0/extra/seg")
    assert seen["headers"]["url_path"] == "extra/seg"


def test_explanations_set_explain_header(backend: Backend, echo: str) -> None:
    seen = _echo(backend, b"{}", "application/json", path="/explanations/echo")
    assert seen["headers"]["explain"] == "True"
    seen = _echo(backend, b'{"instances": [[1, 2, 3, 4]]}', "application/json", path="/v1/models/echo:predict")
    assert seen["repr"] == "{'body': {'instances': [[1, 2, 3, 4]]}}"
    assert "url_path" not in seen["headers"]


def test_get_request_has_empty_body(backend: Backend, echo: str) -> None:
    seen = _echo(backend, None, None, method="GET", path="/predictions/echo?data=xyz")
    assert seen["repr"] == "{'body': bytearray(b'')}"
    assert seen["headers"]["content-length"] == "0"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"no boundary at all", "multipart/form-data"),
        (b"--x\r\ngarbage without headers", "multipart/form-data; boundary=x"),
        (b"%%%=&&&=%zz", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00not utf-8", "text/plain"),
    ],
)
def test_malformed_bodies_reach_the_handler_without_hurting_the_server(
    backend: Backend, echo: str, body: bytes, content_type: str
) -> None:
    seen = _echo(backend, body, content_type)
    assert isinstance(seen["repr"], str)  # the handler got a data row and answered
    assert backend.predict("startup").status == 200
