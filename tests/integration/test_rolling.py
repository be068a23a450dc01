"""A rolling update (issue 13): two instances (role all, one storage directory, one Redis,
queue.backend redis) behind a round-robin TCP proxy; 20 tus uploads run through the proxy, in
several PATCHes each, with a client that resumes as tus clients do; one instance gets SIGTERM
half-way. Every upload completes from the client's side, every original is byte-identical,
every photo reaches ready, and the stopped instance exits 0 after draining. The uploads it was
serving move to the other instance (its access log and the other's both answered PATCHes of
theirs); a drained instance ends each connection after its answer, so the clients need no retry
here, but they would after a kill -9 (then they wait out the upload locks' TTL with 423s)."""
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from test_uploads import Client

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert"),
]

UPLOADS, CHUNK = 20, 64 << 10
RATE = 1 << 20  # bytes a second per connection from client to server: a phone, not loopback


class Proxy:
    """A round-robin TCP proxy on loopback, as a load balancer without sticky sessions: each new
    connection goes to the next backend that accepts it (a refused connect tries the next one).
    Bytes from the client trickle at `rate` per connection, so PATCH bodies are still arriving
    when an instance is told to stop."""

    def __init__(self, ports, rate):
        self.ports, self.rate = ports, rate
        self.turn, self.lock = 0, threading.Lock()
        self.connections = {p: 0 for p in ports}
        self.socks = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _backend(self):
        with self.lock:
            first, self.turn = self.turn, (self.turn + 1) % len(self.ports)
        for i in range(len(self.ports)):
            port = self.ports[(first + i) % len(self.ports)]
            try:
                backend = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:  # refused: this instance closed its listener
                continue
            backend.settimeout(None)
            with self.lock:
                self.connections[port] += 1
                self.socks.append(backend)
            return backend
        return None

    def _serve(self, client):
        with self.lock:
            self.socks.append(client)
        backend = self._backend()
        if backend is None:
            client.close()
            return
        up = threading.Thread(target=self._pipe, args=(client, backend, self.rate, False), daemon=True)
        up.start()
        self._pipe(backend, client, None, True)
        up.join()
        client.close()
        backend.close()

    @staticmethod
    def _pipe(src, dst, rate, last):
        """Copies src to dst until src ends. The client's end half-closes its way; the backend's
        end (or an error either way) closes the whole connection, as a load balancer does."""
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            last = True
        for s in (dst, src) if last else (dst,):
            try:
                s.shutdown(socket.SHUT_RDWR if last else socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        with self.lock:
            for s in self.socks:
                s.close()


class Upload:
    """One tus upload through the proxy, resuming like tus-js-client: on a connection error or
    a 5xx, 423 or 409 it asks HEAD for the offset and goes on from there."""

    def __init__(self, client, base, data):
        self.c, self.base, self.data = client, base, data
        self.offset, self.retries, self.media_id, self.error = 0, 0, None, None
        self.http = requests.Session()  # keep-alive, as a browser's connection

    def _retry(self, what):
        self.retries += 1
        assert self.retries < 60, f"too many retries ({what})"
        time.sleep(0.05 * min(self.retries, 10))

    def _resync(self):
        while True:
            try:
                h = self.http.head(self.url, headers=self.c.h(), timeout=(5, 30))
                if h.status_code == 200:
                    self.offset = int(h.headers["upload-offset"])
                    if self.offset == len(self.data):
                        self.media_id = h.headers["media-id"]
                    return
                assert h.status_code >= 500 or h.status_code == 423, (h.status_code, h.text)
            except requests.ConnectionError:
                pass
            self._retry("HEAD")

    def run(self):
        try:
            while True:
                try:
                    r = self.http.post(self.base + "/v1/uploads", timeout=(5, 30),
                                       headers=self.c.h(**{"Upload-Length": str(len(self.data))}))
                    if r.status_code == 201:
                        break
                    assert r.status_code >= 500, (r.status_code, r.text)
                except requests.ConnectionError:
                    pass
                self._retry("POST")
            self.url = self.base + r.headers["location"]
            while self.media_id is None:
                try:
                    r = self.http.patch(self.url, data=self.data[self.offset:self.offset + CHUNK], timeout=(5, 30),
                                        headers=self.c.h(**{"Upload-Offset": str(self.offset),
                                                            "Content-Type": "application/offset+octet-stream"}))
                    if r.status_code == 204:
                        self.offset = int(r.headers["upload-offset"])
                        if self.offset == len(self.data):
                            self.media_id = r.headers["media-id"]
                        continue
                    assert r.status_code >= 500 or r.status_code in (409, 423), (r.status_code, r.text)
                except requests.ConnectionError:
                    pass
                self._retry("PATCH")
                self._resync()
        except BaseException as e:  # reported by the test's thread
            self.error = e


def photos(tmp_path, n):
    """n different noisy JPEGs (about 450 KB: seven PATCHes of 64 KiB each), made in parallel."""
    procs = [subprocess.Popen(["convert", "-seed", str(i + 1), "-size", "900x700", "xc:gray", "+noise", "Random",
                               "-quality", "90", str(tmp_path / f"p{i}.jpg")]) for i in range(n)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    return [(tmp_path / f"p{i}.jpg").read_bytes() for i in range(n)]


def manifest(tmp_path, media_id):
    p = tmp_path / "shared" / "media" / f"{media_id}.json"
    try:
        return json.loads(p.read_text())
    except (FileNotFoundError, ValueError):
        return None


def test_sigterm_one_of_two_instances_while_20_uploads_run(make_server, redis_server, tmp_path):
    shared = {"MEDIAEDGE_QUEUE_BACKEND": "redis", "MEDIAEDGE_REDIS_URL": redis_server.url,
              "MEDIAEDGE_STORAGE_ROOT": str(tmp_path / "shared"), "MEDIAEDGE_SERVER_ROLE": "all"}
    a, b = [make_server(env=shared).start() for _ in range(2)]
    proxy = Proxy([a.http_port, b.http_port], RATE)
    datas = photos(tmp_path, UPLOADS)
    total = sum(len(d) for d in datas)
    client = Client(a)
    uploads = [Upload(client, proxy.url, d) for d in datas]
    threads = [threading.Thread(target=u.run) for u in uploads]
    started = time.time()
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while sum(u.offset for u in uploads) < total // 2 and time.time() < deadline:
            time.sleep(0.005)
        partial = sum(0 < u.offset < len(u.data) for u in uploads)
        at_term = sorted(u.offset / len(u.data) for u in uploads)
        to_a = proxy.connections[a.http_port]
        a.signal(signal.SIGTERM)
        stopped = time.time()
        deadline = time.time() + 60
        for t in threads:
            t.join(max(0.0, deadline - time.time()))
        uploaded = time.time()
        assert a.wait(timeout=30) == 0  # drained: in-flight PATCHes and running photos finished
        exited = time.time()
        for u in uploads:
            assert u.error is None, repr(u.error)
            assert u.media_id is not None, f"upload stuck at {u.offset} of {len(u.data)}"
        # the signal came half-way, while the first instance was serving some of them
        assert partial >= UPLOADS // 2, partial
        assert to_a > 0
        for u in uploads:
            assert hashlib.sha256((tmp_path / "shared" / "originals" / "a1" / u.media_id).read_bytes()).digest() \
                == hashlib.sha256(u.data).digest()
        assert len({u.media_id for u in uploads}) == UPLOADS
        deadline = time.time() + 60
        while time.time() < deadline and any((manifest(tmp_path, u.media_id) or {}).get("status") != "ready"
                                             for u in uploads):
            time.sleep(0.05)
        for u in uploads:
            m = manifest(tmp_path, u.media_id)
            assert m is not None and m["status"] == "ready", m
            assert m["original"]["sha256"] == hashlib.sha256(u.data).hexdigest()
            assert "thumb.jpg" in m["variants"]
        ready = time.time()
        b.signal(signal.SIGTERM)  # its log lines are buffered: the exit writes them
        assert b.wait(timeout=30) == 0

        # uploads that moved: PATCHes of theirs answered by the stopped instance, then by the other
        def patched(server):
            return {l["path"] for l in server.log_lines()
                    if l.get("type") == "access" and l.get("method") == "PATCH" and l.get("status") == 204}

        both = patched(a) & patched(b)
        moved = sum("/v1/uploads/" + u.url.rsplit("/", 1)[1] in both for u in uploads)
        assert moved >= UPLOADS // 4, moved
        print(f"\nrolling: {total} bytes in {UPLOADS} uploads; SIGTERM after {stopped - started:.2f}s "
              f"({partial} partial, {to_a} connections to A so far); uploads done {uploaded - started:.2f}s, "
              f"A exited {exited - started:.2f}s, all ready {ready - started:.2f}s; "
              f"{moved} moved from A to B; client retries {sum(u.retries for u in uploads)}; "
              f"connections {proxy.connections}; progress at SIGTERM {at_term[0]:.2f}..{at_term[-1]:.2f}")
    finally:
        proxy.close()
