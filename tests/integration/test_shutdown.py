"""Graceful shutdown: not ready at once, listeners open for the delay, in-flight requests finish."""
import signal
import socket
import threading
import time

import requests


def slow_post(port, path, total, pieces, interval, result):
    """Sends a POST whose body trickles in; stores the response's first line in result."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n".encode())
    for _ in range(pieces):
        s.sendall(b"x" * (total // pieces))
        time.sleep(interval)
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    result.append(data.split(b"\r\n", 1)[0].decode())
    s.close()


def test_sigterm_drains_slow_request_and_exits_0(make_server):
    s = make_server(env={"MEDIAEDGE_SHUTDOWN_DELAY": "1s"}).start()
    result = []
    t = threading.Thread(target=slow_post, args=(s.http_port, "/healthz", 1000, 10, 0.3, result))
    t.start()
    time.sleep(0.5)
    s.signal(signal.SIGTERM)
    time.sleep(0.2)
    # during the delay: still accepting, but not ready
    r = requests.get(s.http + "/readyz")
    assert r.status_code == 503
    assert r.json()["error"] == "draining"
    assert requests.get(s.http + "/healthz").status_code == 200
    t.join(15)
    assert result == ["HTTP/1.1 405 Method Not Allowed"]
    assert s.wait(15) == 0
    # after the drain the listeners are gone
    try:
        requests.get(s.http + "/healthz", timeout=1)
        assert False, "still listening"
    except requests.ConnectionError:
        pass


def test_listeners_close_after_delay(make_server):
    s = make_server(env={"MEDIAEDGE_SHUTDOWN_DELAY": "2s"}).start()
    start = time.time()
    s.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert requests.get(s.http + "/healthz").status_code == 200
    assert s.wait(15) == 0
    assert time.time() - start >= 1.9


def test_second_signal_exits_at_once(make_server):
    s = make_server(env={"MEDIAEDGE_SHUTDOWN_DELAY": "30s"}).start()
    s.signal(signal.SIGTERM)
    time.sleep(0.3)
    start = time.time()
    s.signal(signal.SIGINT)
    assert s.wait(5) != 0
    assert time.time() - start < 3


def test_http2_client_gets_goaway(make_server):
    """An HTTP/2 connection open across the shutdown is told to go away (GOAWAY) and closed."""
    s = make_server(env={"MEDIAEDGE_SHUTDOWN_DELAY": "0"}).start()
    sock = socket.create_connection(("127.0.0.1", s.http_port))
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    sock.sendall(preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # empty SETTINGS
    time.sleep(0.2)
    s.signal(signal.SIGTERM)
    sock.settimeout(10)
    frames, buf = [], b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            frames.append(buf[3])
            buf = buf[9 + length:]
    assert 0x7 in frames, f"no GOAWAY among frame types {frames}"
    assert s.wait(15) == 0
