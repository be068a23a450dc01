"""Logs: one JSON object per line on stderr, an access line per request, no secrets."""
import time

import requests


def wait_for(pred, timeout=3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_access_line_per_request(server):
    r = requests.get(server.http + "/healthz?secret=should-not-appear", headers={"X-Request-Id": "req-42"})
    assert r.status_code == 200

    def find():
        return [l for l in server.log_lines() if l.get("type") == "access" and l.get("req") == "req-42"]

    lines = wait_for(find)
    assert len(lines) == 1
    a = lines[0]
    assert a["method"] == "GET"
    assert a["path"] == "/healthz"
    assert a["route"] == "/healthz"
    assert a["status"] == 200
    assert a["proto"] == "HTTP/1.1"
    assert a["bytes_out"] == 15
    assert 0 <= a["duration"] < 5
    assert "should-not-appear" not in server.log_text()


def test_every_line_is_json(server):
    for _ in range(5):
        requests.get(server.http + "/metrics")
    requests.get(server.http + "/nope\x01")
    server.signal()
    assert server.wait() == 0
    text = server.log_text()
    assert text.endswith("\n")
    lines = server.log_lines()
    assert len(lines) == len(text.splitlines())
    assert all("ts" in l for l in lines)


def test_token_never_logged(server):
    token = server.token("--scope", "upload", "--user", "u1", "--album", "a1")
    requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + token})
    requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + token[:-3] + "xyz"})
    server.signal()
    assert server.wait() == 0
    text = server.log_text()
    assert token.split(".")[2] not in text
    assert token not in text
