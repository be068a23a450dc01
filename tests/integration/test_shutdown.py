"""Graceful shutdown: not ready at once, listeners open for the delay, in-flight requests finish."""
import os
import signal
import socket
import threading
import time

import requests


def status_line(sock, timeout):
    """The status line of the response on sock ("" when the connection closes first)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data.split(b"\r\n", 1)[0].decode()


def slow_post(port, path, total, pieces, interval, result):
    """Sends a POST whose body trickles in; stores the response's first line in result."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n".encode())
    for _ in range(pieces):
        s.sendall(b"x" * (total // pieces))
        time.sleep(interval)
    result.append(status_line(s, 10))


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


def listening_fds(pid):
    """fd -> fdinfo flags of the process's listening TCP sockets."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = next(l for l in f if l.startswith("flags:")).split()[1]
            found[int(fd)] = int(flags, 8)
    return found


def test_listening_sockets_are_close_on_exec(make_server):
    """Every loop's listening sockets are close-on-exec: a decoder child (or anything else the
    server starts) never inherits the server's listeners."""
    s = make_server(env={"MEDIAEDGE_SERVER_THREADS": "3"}).start()
    fds = listening_fds(s.proc.pid)
    assert len(fds) == 3 * 2  # each loop: http and https
    for fd, flags in fds.items():
        assert flags & os.O_CLOEXEC, f"listening fd {fd} is inherited by children (flags {flags:o})"
    s.signal(signal.SIGTERM)
    assert s.wait(15) == 0


def test_drain_timeout_still_answers_work_on_the_pool(make_server):
    """A PATCH whose storage work is still running when the drain times out gets its answer:
    the pool's work is run out while the loops still run, so its completion is not sent to a
    stopped loop (which would leave the client with a closed connection and no status)."""
    from test_uploads import Client
    size = 256 << 20
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "512MiB", "MEDIAEDGE_SHUTDOWN_DRAIN_TIMEOUT": "0",
                         "MEDIAEDGE_UPLOADS_MAX_SIZE": "1GiB"}).start()
    c = Client(s)
    url = c.url(c.create(size))
    path = url[len(s.http):]
    body = b"\xff\xd8\xff" + b"k" * (size - 3)
    sock = socket.create_connection(("127.0.0.1", s.http_port))
    sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                  f"Authorization: Bearer {c.token}\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Content-Length: {size}\r\n\r\n").encode())
    sock.sendall(body)
    # the body is in; its write and fsync (hundreds of ms for 256 MiB) run on the pool
    s.signal(signal.SIGTERM)
    assert status_line(sock, 30) == "HTTP/1.1 204 No Content"
    assert s.wait(30) == 0


def test_clean_exit_frees_what_the_start_made(make_server):
    """After a drain everything the start made is freed, as after a failed start: under the
    sanitizer build LeakSanitizer reports any leak at exit (exit status 23). A role that
    runs everything, with an upload done first, so that each part has worked."""
    from test_uploads import Client
    supp = os.path.join(os.environ.get("ME_SRCDIR", "."), "tests", "integration", "lsan-server.supp")
    s = make_server(env={"ASAN_OPTIONS": "detect_leaks=1", "LSAN_OPTIONS": f"suppressions={supp}",
                         "MEDIAEDGE_SERVER_ROLE": "all"}).start()
    Client(s).upload(b"\xff\xd8\xff" + b"x" * 1000)
    s.signal(signal.SIGTERM)
    assert s.wait(30) == 0, s.log_text()[-3000:]
    assert "LeakSanitizer" not in s.log_text()
