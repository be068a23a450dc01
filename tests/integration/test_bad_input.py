"""Hostile input against the real server: malformed, negative and overflowing upload headers,
invalid base64, CRLF, oversized headers, path traversal in ids, album names and token claims,
non-UTF-8 file names, slow headers (slowloris) and slow bodies. Each refusal is checked for
its status and its stable JSON error code; after the abuse the server still answers other
clients, its memory stays bounded, and an upload completed before is byte-identical."""
import base64
import hashlib
import json
import os
import socket
import threading
import time

import jwt
import pytest
import requests

from test_uploads import TUS, Client, jpeg, original

SECRET = "bad-input-test-secret-0123456789abcdef"
ID = "AAAAAAAAAAAAAAAAAAAAAA"


@pytest.fixture
def srv(make_server):
    # requests taking longer than 3 s are cut (libh2o's one HTTP/1.1 timeout, headers and body)
    return make_server(env={"MEDIAEDGE_TOKENS_HS256_SECRET": SECRET,
                            "MEDIAEDGE_HTTP_HTTP1_REQUEST_TIMEOUT": "3s"}).start()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == code, body
    assert body.get("message") or body.get("title")
    return body


def raw(server, data, timeout=5):
    """Sends data as it is on a fresh connection; returns what came back until the server
    closed or went quiet."""
    out = b""
    try:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as s:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"content-length: " in out.lower():
                    head, _, body = out.partition(b"\r\n\r\n")
                    n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(body) >= n:
                        break
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass  # the server closed on us: what came before is the answer
    return out


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def body_json(resp):
    return json.loads(resp.partition(b"\r\n\r\n")[2])


def token(claims, secret=SECRET):
    base = {"sub": "u1", "album": "a1", "scope": "upload", "plan": "premium", "iss": "mediaedge-dev",
            "aud": "mediaedge", "exp": int(time.time()) + 600}
    base.update(claims)
    return jwt.encode(base, secret, algorithm="HS256")


def served(server, c):
    """Other clients are answered: a health check, and a small upload from start to end."""
    assert requests.get(server.http + "/healthz", timeout=10).status_code == 200
    data = jpeg(10000)
    url, r = c.upload(data)
    assert r.status_code == 204 and r.headers.get("media-id")
    assert original(server, c.album, r.headers["media-id"]) == data


def test_malformed_upload_headers_each_get_their_code(srv):
    c = Client(srv)
    create = srv.http + "/v1/uploads"
    cases = [
        ({"Upload-Length": "-1"}, 400, "bad_request"),
        ({"Upload-Length": "18446744073709551616"}, 400, "bad_request"),  # 2^64
        ({"Upload-Length": "99999999999999999999999999"}, 400, "bad_request"),
        ({"Upload-Length": "1e9"}, 400, "bad_request"),
        ({"Upload-Length": "0x10"}, 400, "bad_request"),
        ({"Upload-Length": "18446744073709551615"}, 413, "upload_too_large"),  # fits, but over max_size
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, 400, "bad_request"),
        ({"Upload-Defer-Length": "2"}, 400, "bad_request"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename a$b="}, 400, "bad_request"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename ===="}, 400, "bad_request"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename YQ==YQ=="}, 400, "bad_request"),
        ({"Upload-Length": "5", "Upload-Metadata": "filename YQ"}, 400, "bad_request"),
        ({"Upload-Length": "5", "Upload-Metadata": "a " + "QUFB" * 1100}, 400, "bad_request"),  # > 4096 bytes
        ({"Upload-Length": "5", "Upload-Concat": "final;/v1/uploads/../../etc/passwd"}, 400, "invalid_concat"),
        ({"Upload-Concat": "final;" + " ".join(["/v1/uploads/" + ID] * 2)}, 400, "invalid_concat"),
    ]
    for extra, status, code in cases:
        error_of(requests.post(create, headers=c.h(**extra)), status, code)
    r = requests.post(create, headers={**c.h(), "Tus-Resumable": "0.2.2", "Upload-Length": "5"})
    error_of(r, 412, "unsupported_version")

    url = c.url(c.create(100))
    for offset in ["-1", "18446744073709551616", "99999999999999999999999", "", "1.5", "+0"]:
        error_of(c.patch(url, offset, b"x" * 10), 400, "bad_request")
    error_of(c.patch(url, 50, b"x" * 10), 409, "offset_mismatch")
    error_of(c.patch(url, 0, b"x" * 101), 413, "upload_too_large")  # past the declared length
    for ck in ["sha256 !!!notbase64!!!", "sha256 " + base64.b64encode(b"short").decode(), "sha512 AAAA", "sha256"]:
        error_of(c.patch(url, 0, b"x" * 10, **{"Upload-Checksum": ck}), 400, "bad_request")
    ck = "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    error_of(c.patch(url, 0, b"x" * 10, **{"Upload-Checksum": ck}), 460, "checksum_mismatch")
    # nothing of the refused PATCHes was stored
    assert c.head(url).headers["upload-offset"] == "0"
    # the draft's structured fields
    draft = {"Upload-Draft-Interop-Version": "6", "Authorization": "Bearer " + c.token}
    error_of(requests.post(create, headers={**draft, "Upload-Draft-Interop-Version": "7"}), 400, "bad_request")
    for complete in ["?2", "1", "true", "?1 ", ""]:
        error_of(requests.post(create, headers={**draft, "Upload-Complete": complete}), 400, "bad_request")
    served(srv, c)


def test_crlf_and_control_bytes_in_headers(srv):
    c = Client(srv)
    req = (f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {c.token}\r\n"
           "Upload-Length: 5\r\n").encode()
    # a bare CR or LF inside a value ends the header for libh2o's parser (the rest is another
    # header), or the parser refuses the request (400, its own plain text: no JSON there);
    # either way no CR or LF reaches the metadata stored, and nothing is echoed
    for value in [b"filename YQ==\rX-Injected: 1", b"filename YQ==\nX-Injected: 1"]:
        resp = raw(srv, req + b"Upload-Metadata: " + value + b"\r\n\r\n")
        assert status_of(resp) in (201, 400), resp[:200]
        assert b"x-injected" not in resp.lower()
        if status_of(resp) == 201:
            loc = resp.split(b"location: ")[1].split(b"\r\n")[0].decode()
            info = json.loads((srv.dir / "var" / "storage" / "uploads" / (loc.rsplit("/", 1)[1] + ".info")).read_text())
            assert info["metadata"] == "filename YQ==", info
    # a control byte in a header: libh2o's own 400 (plain text); a byte above ASCII in a
    # metadata key: ours
    resp = raw(srv, req + b"Upload-Metadata: file\x01name YQ==\r\n\r\n")
    assert status_of(resp) == 400, resp[:200]
    resp = raw(srv, req + b"Upload-Metadata: fil\xffname YQ==\r\n\r\n")
    assert status_of(resp) == 400, resp[:200]
    assert body_json(resp)["error"] == "bad_request"
    # CRLF inside a base64 value is only bytes of the name: stored, never echoed as a header
    evil = base64.b64encode(b"kid.jpg\r\nSet-Cookie: stolen=1\r\n\r\n<script>").decode()
    r = c.create(5, metadata="filename " + evil)
    assert r.status_code == 201
    assert "set-cookie" not in {k.lower() for k in r.headers}
    h = c.head(c.url(r))
    assert h.status_code == 200 and "set-cookie" not in {k.lower() for k in h.headers}
    served(srv, c)


def test_non_utf8_file_names_are_kept_as_bytes(srv):
    c = Client(srv)
    data = jpeg(3000)
    name = b"\xff\xfe\x80 caf\xe9 \xed\xa0\x80.jpg"  # invalid UTF-8, a Latin-1 byte, a lone surrogate
    r = c.create(len(data), metadata="filename " + base64.b64encode(name).decode() + ",filetype aW1hZ2UvanBlZw==")
    url = c.url(r)
    r = c.patch(url, 0, data)
    assert r.status_code == 204, r.text
    assert original(srv, c.album, r.headers["media-id"]) == data
    # the upload's state document is still valid JSON, with the metadata as sent
    info = json.loads((srv.dir / "var" / "storage" / "uploads" / (url.rsplit("/", 1)[1] + ".info")).read_text())
    assert base64.b64encode(name).decode() in json.dumps(info)


def test_path_traversal_in_ids_albums_and_tokens(srv):
    c = Client(srv)
    view = srv.token("--scope", "view", "--user", "u1", "--album", "a1")
    patch = c.h(**{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    for path in ["/v1/uploads/..%2F..%2Fetc%2Fpasswd", "/v1/uploads/" + "." * 22, "/v1/uploads/" + ID[:-2] + "%00x",
                 "/v1/uploads/" + ID + "/x"]:
        error_of(requests.patch(srv.http + path, headers=patch, data=b"x"), 404, "not_found")
    # paths that normalise to the collection: no upload there, and no PATCH
    for path in ["/v1/uploads/" + ID + "/..", "/v1/uploads/" + ID[:-2] + "%2F.."]:
        error_of(requests.patch(srv.http + path, headers=patch, data=b"x"), 405, "method_not_allowed")
    auth = {"Authorization": "Bearer " + view}
    for path in ["/v1/media/..%2F..%2Fetc%2Fpasswd", "/v1/media/" + "." * 22, "/v1/albums/..%2F..%2Fetc/media?ids=" + ID]:
        error_of(requests.get(srv.http + path, headers=auth), 404, "not_found")
    error_of(requests.get(srv.http + "/v1/albums/a1/media?ids=../../etc/passwd", headers=auth), 400, "bad_request")
    for path in ["/m/..%2F..%2Fetc/x/thumb.jpg", "/m/a1/" + ID + "/..%2F..%2Foriginal", "/m/a1/../../etc/passwd",
                 "/m/a1/" + ID + "/thumb.jpg%00.png"]:
        error_of(requests.get(srv.http + path), 404, "not_found")
    # claims that would make a path: refused however well signed
    for claims in [{"album": "../a1"}, {"album": "a1/../../etc"}, {"sub": "../../root"}, {"album": "a1%2F.."},
                   {"album": "a" * 65}, {"album": ""}, {"album": "caf\u00e9"}]:
        r = requests.post(srv.http + "/v1/uploads", headers={**TUS, "Upload-Length": "5",
                                                             "Authorization": "Bearer " + token(claims)})
        error_of(r, 401, "unauthorized")
    # the same construction with good claims passes: the refusals above are the claims'
    r = requests.post(srv.http + "/v1/uploads", headers={**TUS, "Upload-Length": "5",
                                                         "Authorization": "Bearer " + token({})})
    assert r.status_code == 201, r.text
    assert not any(p.name == "etc" for p in (srv.dir / "var").rglob("etc"))


def test_oversized_headers(srv):
    c = Client(srv)
    pid = srv.proc.pid
    before = rss_kib(pid)
    # libh2o answers headers past its buffer's limit itself (400, plain text) or closes
    for size in [1 << 20, 8 << 20]:
        resp = raw(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n", timeout=10)
        assert resp == b"" or status_of(resp) == 400, resp[:200]
    # many headers: one request of 20000 small ones
    resp = raw(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20000)) + b"\r\n")
    assert resp == b"" or status_of(resp) in (200, 400, 431), resp[:200]
    # an oversized token is refused before any work
    r = requests.get(srv.http + "/v1/whoami", headers={"Authorization": "Bearer " + "a" * 100000})
    error_of(r, 401, "unauthorized")
    served(srv, c)
    assert rss_kib(pid) < before + 64 * 1024


def test_slow_headers_and_bodies_do_not_starve_others(srv):
    """200 connections trickle their headers (slowloris) and 20 send PATCH bodies at a few
    bytes a second; meanwhile other clients are served, memory stays bounded, the slow ones
    are cut by the request timeout (3 s here) without storing a byte, and an upload completed
    before is still byte-identical."""
    c = Client(srv)
    kept = jpeg(200000)
    _, r = c.upload(kept, chunk=50000)
    kept_id = r.headers["media-id"]
    slow_url = c.url(c.create(1 << 20))
    pid = srv.proc.pid
    before = rss_kib(pid)

    stop = threading.Event()
    closed = []
    lock = threading.Lock()

    def slowloris(i):
        s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=30)
        try:
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i
            for b in head + b"a" * 10000:
                if stop.is_set():
                    return
                s.sendall(bytes([b]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            with lock:
                closed.append(i)
        finally:
            s.close()

    def slow_body(i):
        s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=30)
        try:
            path = slow_url.split(str(srv.http_port), 1)[1]
            s.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {c.token}\r\n"
                       "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                       f"Content-Length: {1 << 20}\r\n\r\n").encode())
            while not stop.is_set():
                s.sendall(b"z" * 16)
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            with lock:
                closed.append(1000 + i)
        finally:
            s.close()

    threads = [threading.Thread(target=slowloris, args=(i,)) for i in range(200)]
    threads += [threading.Thread(target=slow_body, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for _ in range(3):
            served(srv, c)
        # the server cuts them (http1_request_timeout): every slow connection ends by itself
        deadline = time.time() + 60
        while time.time() < deadline and len(closed) < len(threads):
            time.sleep(0.5)
        assert len(closed) == len(threads), f"{len(closed)} of {len(threads)} slow connections cut"
        served(srv, c)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert srv.proc.poll() is None
    assert rss_kib(pid) < before + 64 * 1024
    # nothing of the slow bodies was stored; what was stored before is intact
    assert c.head(slow_url).headers["upload-offset"] == "0"
    assert original(srv, c.album, kept_id) == kept
