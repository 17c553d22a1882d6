"""The router's fast head path (http1.fast_request_head / fast_response_head) against the general
path (parse_head, Message.forwarded, encode_head): whenever the general path refuses a head, the
fast path declines it too (returns None, so the general path answers it), and whenever the fast
path answers, the head it sends on means exactly what the general path's would (same start line,
same fields in the same order, values equal after optional whitespace), with the same method, body
length and keep-alive. Checked on the smuggling corpus and on heads made by hypothesis from
pieces that include every framing, hop-by-hop and edge name and the bytes that break heads."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.agent.test_smuggling import HEAD_CORPUS

from conveyor.agent.http1 import BadRequest, fast_request_head, fast_response_head, parse_head

IP = "192.0.2.7"


def _split(head: bytes) -> int:
    return head.index(b"\n") + 1


def _meaning(head: bytes, request: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    nl = _split(head)
    msg = parse_head(head[:nl], head[nl:], request)
    return msg.start, [(k.lower(), v) for k, v in msg.headers]


def agree_request(head: bytes) -> bool:
    """Check one request head (up to and with its CRLFCRLF); True when the fast path took it."""
    nl = _split(head)
    fast = fast_request_head(head, nl, IP.encode())
    try:
        msg = parse_head(head[:nl], head[nl:], True)
    except BadRequest:
        assert fast is None, f"the fast path took a head the general path refuses: {head!r}"
        return False
    if fast is None:
        return False
    assert fast_request_head(head, nl, IP.encode()) == fast  # remembered: the same answer again
    out, method, size, keep = fast
    msg.forwarded(IP, "127.0.0.1", 8080)
    assert _meaning(out, True) == _meaning(msg.encode_head(keep_alive=True), True), head
    assert (method.decode(), size, keep) == (msg.method, msg.content_length or 0, msg.keep_alive)
    assert not msg.is_chunked
    return True


def agree_response(head: bytes, keep_alive: bool) -> bool:
    nl = _split(head)
    fast = fast_response_head(head, nl, keep_alive)
    try:
        if b"\n" in head[: nl - 1] or b"\r" in head[: nl - 2]:
            raise BadRequest("bare")
        msg = parse_head(head[:nl], head[nl:], False)
    except (BadRequest, ConnectionError):
        assert fast is None, f"the fast path took a response head the general path refuses: {head!r}"
        return False
    if fast is None:
        return False
    status, out, size, backend_keep = fast
    assert _meaning(out, False) == _meaning(msg.encode_head(keep_alive=keep_alive), False), head
    assert (status, size, backend_keep) == (msg.status, msg.content_length, msg.keep_alive)
    assert not msg.is_chunked and not (100 <= msg.status < 200)
    return True


@pytest.mark.parametrize("case", list(HEAD_CORPUS))
def test_the_fast_path_declines_every_smuggling_head(case: str) -> None:
    payload = HEAD_CORPUS[case]
    if b"\r\n\r\n" not in payload:
        return  # never a whole head: the fast path only looks at whole ones
    head = payload[: payload.index(b"\r\n\r\n") + 4]
    assert not agree_request(head), f"{case}: taken by the fast path"


def test_common_heads_take_the_fast_path() -> None:
    assert agree_request(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    assert agree_request(
        b"POST /f?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 007\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"Forwarded: for=6.6.6.6\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nUser-Agent:  curl/8  \r\n\r\n"
    )
    assert agree_request(b"GET / HTTP/1.1\r\nhost:x\r\nCONNECTION: close\r\n\r\n")
    nginx = (
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 04:12:06 GMT\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"
    )
    assert agree_response(nginx, True)
    assert agree_response(nginx, False)
    assert agree_response(b"HTTP/1.1 204 No Content\r\nX-Forwarded-For: kept\r\nconnection: close\r\n\r\n", True)


def test_what_the_fast_path_leaves_to_the_general_one() -> None:
    for head in (
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",  # HTTP/1.0
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nClose: 1\r\n\r\n",  # a field a Connection: close would name
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",  # an empty Host: X-Forwarded-Host comes from the router
    ):
        assert fast_request_head(head, _split(head), b"1.2.3.4") is None, head
    for head in (
        b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
    ):
        assert fast_response_head(head, _split(head), True) is None, head


NAMES = [
    "Host",
    "host",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "TE",
    "Upgrade",
    "Trailer",
    "Proxy-Connection",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "Forwarded",
    "X-Forwarded-For",
    "X-Real-IP",
    "Close",
    "X-A",
    "Te-x",
    "Hostname",
    "Bad Name",
    "",
]
VALUES = st.text(alphabet="ab0125 \t,;=\x00\x0b\r\n:", max_size=12) | st.sampled_from(
    ["x", "10", "0", "chunked", "close", "keep-alive", "keep-alive, close", "Close", "1.2.3.4", "a b"]
)
LINE = st.tuples(st.sampled_from(NAMES), st.sampled_from([":", ": ", " :", ":\t", "\t:"]), VALUES).map(
    lambda t: (t[0] + t[1] + t[2]).encode("latin-1")
)
ENDS = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r", b"\r\n "])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from(
        [b"GET / HTTP/1.1", b"POST /p HTTP/1.1", b"HEAD /h HTTP/1.1", b"GET / HTTP/1.0", b"GET  / HTTP/1.1"]
    ),
    lines=st.lists(st.tuples(LINE, ENDS), max_size=6),
)
def test_any_request_head_gets_the_same_meaning_or_is_declined(start: bytes, lines: list[tuple[bytes, bytes]]) -> None:
    head = start + b"\r\n" + b"".join(line + end for line, end in lines) + b"\r\n"
    if not head.endswith(b"\r\n\r\n") or b"\r\n\r\n" in head[:-4]:
        return  # the router only looks at a head up to its first CRLFCRLF
    agree_request(head)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 100 Continue", b"HTTP/1.0 200"]),
    lines=st.lists(st.tuples(LINE, ENDS), max_size=6),
    keep_alive=st.booleans(),
)
def test_any_response_head_gets_the_same_meaning_or_is_declined(
    start: bytes, lines: list[tuple[bytes, bytes]], keep_alive: bool
) -> None:
    head = start + b"\r\n" + b"".join(line + end for line, end in lines) + b"\r\n"
    if not head.endswith(b"\r\n\r\n") or b"\r\n\r\n" in head[:-4]:
        return
    agree_response(head, keep_alive)
