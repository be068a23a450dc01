"""HEAD errors, read off a raw HTTP/1.1 socket: the status line, reason phrase and headers that
another method's error gets (WWW-Authenticate, Retry-After, Tus-Version), and no body."""
import signal
import socket
import time

from test_uploads import TUS, Client

UNKNOWN = "/v1/uploads/" + "a" * 22  # well-formed, never created

# headers that differ between any two responses, or that only a body has
VOLATILE = {"date", "x-request-id", "content-length", "content-type"}


def exchange(port, method, path, headers):
    """Sends method path with headers, then a GET /healthz on the same connection, and returns
    (status line, headers of the first response, bytes between it and the second response)."""
    s = socket.create_connection(("127.0.0.1", port))
    lines = [f"{method} {path} HTTP/1.1", "Host: x"] + [f"{k}: {v}" for k, v in headers.items()]
    if method == "PATCH":
        lines += ["Content-Length: 0", "Content-Type: application/offset+octet-stream"]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n" + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
              .encode())
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, rest = data.split(b"\r\n\r\n", 1)
    status, *fields = head.decode().split("\r\n")
    got = {}
    for f in fields:
        k, v = f.split(":", 1)
        got.setdefault(k.strip().lower(), []).append(v.strip())
    between = rest[:rest.find(b"HTTP/1.1 ")] if b"HTTP/1.1 " in rest else rest
    return status, got, between


def same_as(port, method, path, headers):
    """HEAD's answer to path must be method's, less the body."""
    status, got, body = exchange(port, "HEAD", path, headers)
    want_status, want, _ = exchange(port, method, path, headers)
    assert status == want_status, (status, want_status)
    assert body == b"", body
    strip = lambda h: {k: v for k, v in h.items() if k not in VOLATILE}
    assert strip(got) == strip(want), (got, want)
    return status, got


def test_head_on_unknown_upload_is_404_not_found(server):
    c = Client(server)
    status, h = same_as(server.http_port, "PATCH", UNKNOWN, c.h(**{"Upload-Offset": "0"}))
    assert status == "HTTP/1.1 404 Not Found"
    assert h["tus-resumable"] == ["1.0.0"] and h["cache-control"] == ["no-store"]


def test_unauthenticated_head_asks_for_a_token(server):
    status, h = same_as(server.http_port, "PATCH", UNKNOWN, {**TUS, "Upload-Offset": "0"})
    assert status == "HTTP/1.1 401 Unauthorized"
    assert h["www-authenticate"] == ['Bearer realm="mediaedge"']


def test_head_with_a_bad_token_is_invalid_token(server):
    status, h = same_as(server.http_port, "PATCH", UNKNOWN,
                        {**TUS, "Upload-Offset": "0", "Authorization": "Bearer nope"})
    assert status == "HTTP/1.1 401 Unauthorized"
    assert h["www-authenticate"] == ['Bearer realm="mediaedge", error="invalid_token"']


def test_head_without_tus_resumable_names_the_version(server):
    c = Client(server)
    headers = {"Authorization": "Bearer " + c.token, "Upload-Offset": "0"}
    status, h = same_as(server.http_port, "PATCH", UNKNOWN, headers)
    assert status == "HTTP/1.1 412 Precondition Failed"
    assert h["tus-version"] == ["1.0.0"]


def test_head_on_the_collection_is_405_with_allow(server):
    status, h = same_as(server.http_port, "GET", "/v1/uploads", TUS)
    assert status == "HTTP/1.1 405 Method Not Allowed"
    assert h["allow"] == ["POST, OPTIONS"]


def test_head_while_draining_is_503_with_retry_after(make_server):
    s = make_server(env={"MEDIAEDGE_SHUTDOWN_DELAY": "3s"}).start()
    s.signal(signal.SIGTERM)
    time.sleep(0.2)
    status, h = same_as(s.http_port, "GET", "/readyz", {})
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert h["retry-after"] == ["5"]
