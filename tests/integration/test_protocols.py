"""The listeners: HTTP/1.1, HTTP/2 over TLS (ALPN), h2c with prior knowledge, with real clients."""
import json
import re
import subprocess
import time

import requests


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_healthz_over_http11(server):
    out = curl("-i", "--http1.1", server.http + "/healthz")  # text mode: CRLF reads as LF
    assert out.startswith("HTTP/1.1 200 OK\n")
    assert json.loads(out.split("\n\n", 1)[1]) == {"status": "ok"}
    assert re.search(r"(?im)^content-type: application/json$", out)
    assert re.search(r"(?im)^content-length: 15$", out)


def test_h2_over_tls_alpn(server):
    out = curl("-k", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", server.https + "/healthz")
    assert out == "2 200"


def test_http11_over_tls(server):
    out = curl("-k", "--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", server.https + "/readyz")
    assert out == "1.1 200"


def test_h2c_prior_knowledge(server):
    out = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
               server.http + "/healthz")
    assert out == "2 200"


def test_h2c_upgrade(server):
    out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", server.http + "/healthz")
    assert out == "2 200"


def test_nghttp_h2c_and_tls(server):
    for url in (server.http + "/readyz", server.https + "/readyz"):
        p = subprocess.run(["nghttp", "-v", "--timeout=10", url], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert ":status: 200" in p.stdout
        assert '{"status":"ok"}' in p.stdout


def test_self_signed_certificate_is_made_once_and_reused(make_server):
    s = make_server().start()
    pem = s.dir / "var" / "tls" / "self-signed.pem"
    first = pem.read_bytes()
    assert b"BEGIN CERTIFICATE" in first and b"PRIVATE KEY" in first
    assert (pem.stat().st_mode & 0o077) == 0, "the key must not be readable by others"
    s.stop()
    s.start()
    assert pem.read_bytes() == first
    cert = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{s.https_port}", "-alpn", "h2"],
                          input="", capture_output=True, text=True, timeout=10).stdout
    assert "ALPN protocol: h2" in cert


def test_unknown_path_is_json_404(server):
    r = requests.get(server.http + "/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "not_found"


def test_wrong_method_is_405_with_allow(server):
    r = requests.post(server.http + "/healthz", data=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"] == "method_not_allowed"


def test_request_id_echoed_or_made(server):
    r = requests.get(server.http + "/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = requests.get(server.http + "/healthz", headers={"X-Request-Id": "bad id\twith junk"})
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])
    ids = {requests.get(server.http + "/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_demo_page_only_in_development(make_server):
    s = make_server().start()
    r = requests.get(s.http + "/")
    assert r.status_code == 200 and "mediaedge" in r.text
    s2 = make_server(env={"MEDIAEDGE_SERVER_DEMO_PAGE": "false"}).start()
    assert requests.get(s2.http + "/").status_code == 404


def test_oversized_body_refused_before_it_is_read(make_server):
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "64KiB"}).start()
    r = requests.post(s.http + "/healthz", data=b"x" * (65 * 1024))
    assert r.status_code == 413


def test_connections_past_the_cap_wait_in_the_backlog(make_server):
    import socket
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_CONNECTIONS": "2", "MEDIAEDGE_SERVER_THREADS": "1"}).start()
    held = [socket.create_connection(("127.0.0.1", s.http_port)) for _ in range(2)]
    time.sleep(0.2)  # both accepted: the loop is at its cap
    third = socket.create_connection(("127.0.0.1", s.http_port))
    third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    third.settimeout(0.7)
    try:
        third.recv(100)
        assert False, "answered past the connection cap"
    except socket.timeout:
        pass
    held[0].close()
    third.settimeout(5)
    assert third.recv(100).startswith(b"HTTP/1.1 200")
    third.close()
    held[1].close()
