"""A phone on a bad network (badnet.py: throttled, 100-300 ms of latency each way, stalls of
seconds, connections cut at random points, in the middle of PATCH bodies too), between the
real clients and the server:
  - tus-js-client (upload.mjs) in 5 MiB chunks with retryDelays;
  - the IETF resumable-upload draft's client procedure (DraftClient below);
  - HTTP/2: several tus uploads sharing one h2c connection (h2upload.mjs), which is cut with
    every stream on it; each upload resumes on a new connection.
Each completes byte-identical, and what it costs is reported: the bytes sent in all against
the file's size, where each cut may cost at most the request body in flight.

`./bootstrap check` runs a short version (20 MiB at 8 MB/s); ME_LONG=1 (make check-long) the
full one: 100 MiB at 2 MB/s. A failure prints the proxy's seed: BADNET_SEED=N replays it."""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from badnet import MB, BadNet
from conftest import SANITIZED

MiB = 1024 * 1024
LONG = os.environ.get("ME_LONG") == "1"
NODE_DIR = Path(__file__).resolve().parent / "node"
# Under the sanitizers only the HTTP/2 case (every stream of a connection cut at once): the two
# others wait on the throttle and drive no server code that other tests do not drive there
# (a body cut mid-PATCH: test_uploads, test_bad_input), and CI's time is counted.
not_under_sanitizers = pytest.mark.skipif(SANITIZED, reason="network timing; its server code runs under the sanitizers elsewhere")
NODE = shutil.which("node")
CHUNK = 5 * MiB
SIZE = 100 * MiB if LONG else 20 * MiB
UP_RATE = 2 * MB if LONG else 8 * MB
# a cut every 6 to 9 MiB up (more than one 5 MiB request body, so each try can get through):
# at least two cuts in 20 MiB; stalls of 0.5-2 s (1-4 s long) every 4 to 10 MiB
CUT_EVERY = (6 * MiB, (20 if LONG else 9) * MiB)
STALL_EVERY, STALL = ((8 * MiB, 24 * MiB), (1.0, 4.0)) if LONG else ((4 * MiB, 10 * MiB), (0.5, 2.0))
TIMEOUT = 900 if LONG else 240
HEAD_ALLOWANCE = 4096  # the request heads of the retries and HEADs, per request, in the proxy count

node_missing = NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir()
needs_node = pytest.mark.skipif(node_missing, reason="needs node and tus-js-client: npm ci --prefix tests/integration/node")


def j(obj):
    return json.dumps(obj, default=str)


def make_video(path, size):
    """An MP4's ftyp box, then random bytes (the api role only sniffs what is stored: no video
    processing runs in these tests); returns the SHA-256 (hex)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
        f.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            block = os.urandom(min(MiB, left))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


@pytest.fixture
def badnet_server(make_server):
    """A server whose appends are at most 5 MiB (the tus-js chunk; the draft client learns it
    from Upload-Limit)."""
    return make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "5MiB"}).start()


@pytest.fixture
def badnet(badnet_server):
    seed = int(os.environ["BADNET_SEED"]) if os.environ.get("BADNET_SEED") else None
    net = BadNet(badnet_server.http_port, seed=seed, up_rate=UP_RATE, latency=(0.1, 0.3), cut_every=CUT_EVERY,
                 cut_mid_body=True, cut_response=0.3, body_cuts_first=2, stall_every=STALL_EVERY, stall=STALL,
                 log=lambda m: print(m, flush=True))
    net.start()
    print(f"badnet seed {net.seed} (replay: BADNET_SEED={net.seed})", flush=True)
    yield net
    net.stop()
    print("badnet:", j(net.stats()))


def stored_originals(server):
    """{sha256: bytes} of every stored original."""
    out = {}
    for p in (Path(server.dir) / "var" / "storage" / "originals").rglob("*"):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(MiB), b""):
                    h.update(block)
            out[h.hexdigest()] = p.stat().st_size
    return out


def wait_stored(server, shas, timeout=30):
    deadline = time.time() + timeout
    while True:
        got = stored_originals(server)
        if all(s in got for s in shas) or time.time() > deadline:
            return got
        time.sleep(0.2)


def check_cost(net, sent, size, chunk, label):
    """Reports and checks what the cuts cost: each may lose at most the body in flight."""
    st = net.stats()
    cuts = st["cuts"]
    body_cuts = [c for c in cuts if c["where"] == "body"]
    print(f"{label}: file {size} bytes, sent {sent} bytes by the client ({sent / size:.3f} x), "
          f"{st['c2s_bytes']} up through the proxy, {len(cuts)} cuts ({len(body_cuts)} mid-body, "
          f"{len(cuts) - len(body_cuts)} on an answer or between requests), {len(st['stalls'])} stalls, "
          f"{st['connections']} connections, seed {st['seed']}", flush=True)
    assert len(cuts) >= 2 and body_cuts, f"the network was not bad enough: {j(st)}"
    assert size <= sent <= size + len(cuts) * chunk, f"sent {sent} for {size} with {len(cuts)} cuts: {j(st)}"
    # the proxy's count: the same bodies, plus the heads of the requests
    assert st["c2s_bytes"] <= size + len(cuts) * chunk + HEAD_ALLOWANCE * (st["connections"] + 4 * len(cuts) + size // chunk + 8), j(st)


@needs_node
@not_under_sanitizers
def test_tus_js_client_through_a_bad_network(badnet_server, badnet, tmp_path):
    server, net = badnet_server, badnet
    path = tmp_path / "clip.mp4"
    sha = make_video(path, SIZE)
    token = server.token("--scope", "upload", "--user", "u-net", "--album", "fam_net")
    args = [NODE, str(NODE_DIR / "upload.mjs"), f"http://127.0.0.1:{net.port}/v1/uploads", token, str(path),
            str(CHUNK), "--retry-delays", "0,300,1000,2000,3000,5000,5000,5000", "--timeout-s", str(TIMEOUT)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT + 20, cwd=NODE_DIR)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, f"upload.mjs printed nothing (exit {p.returncode}): {p.stderr[-3000:]}"
    res = json.loads(lines[-1])
    assert res["ok"] and p.returncode == 0, f"{j(res)} {p.stderr[-3000:]} seed {net.seed}"
    got = wait_stored(server, [sha])
    assert got.get(sha) == SIZE, f"the stored original is not the file (seed {net.seed}): {j(got)}"
    assert res["retries"] >= 2, j(res)
    check_cost(net, res["bytesSent"], SIZE, CHUNK, "tus-js-client")


class DraftClient:
    """The IETF resumable-upload draft (interop version 6, draft -05) client procedure, over
    plain HTTP/1.1 (http.client) so that every body byte handed to the socket is counted:
      1. POST creates the upload: Upload-Complete: ?0 and Upload-Length, no body (this server
         sends no 104 informational response, so a creation carrying the body and cut before
         its answer would leave the client with no URL to resume: the body goes in appends);
         the answer gives the URL and Upload-Limit's max-append-size;
      2. one append (PATCH, Content-Type: application/partial-upload, Upload-Offset) carries
         as much as it can: the rest of the file, or max-append-size, with Upload-Complete ?1
         on the one that ends the file;
      3. when a request fails (the connection cut, a 5xx), HEAD gives Upload-Offset, and the
         next append starts there (if HEAD says complete, it is done)."""

    def __init__(self, base, token, interop="6", max_tries=40):
        u = urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.token, self.interop, self.max_tries = token, interop, max_tries
        self.sent = 0
        self.tries = 0
        self.url = None

    def headers(self, **extra):
        return {"Authorization": "Bearer " + self.token, "Upload-Draft-Interop-Version": self.interop, **extra}

    def request(self, method, path, headers, body=None, f=None):
        """One request on a new connection; body is (file, offset, length) streamed in 64 KiB pieces."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(body[2] if body else 0))
            conn.endheaders()
            if body:
                fobj, offset, length = body
                fobj.seek(offset)
                while length > 0:
                    piece = fobj.read(min(65536, length))
                    conn.send(piece)
                    self.sent += len(piece)
                    length -= len(piece)
            r = conn.getresponse()
            r.read()
            return r
        finally:
            conn.close()

    def upload(self, path):
        size = os.path.getsize(path)
        r = self.request("POST", "/v1/uploads", self.headers(**{"Upload-Complete": "?0", "Upload-Length": str(size)}))
        assert r.status == 201, (r.status, r.getheaders())
        self.url = r.getheader("Location")
        limits = dict(kv.strip().split("=") for kv in r.getheader("Upload-Limit").split(","))
        max_append = int(limits["max-append-size"])
        offset, last, failures = 0, None, 0
        with open(path, "rb") as f:
            while True:
                if failures > 0:
                    h = self.request("HEAD", self.url, self.headers())
                    assert h.status == 204, (h.status, h.getheaders())
                    offset = int(h.getheader("Upload-Offset"))
                    if h.getheader("Upload-Complete") == "?1":
                        return {"url": self.url, "sent": self.sent, "tries": self.tries, "last": last}
                n = min(max_append, size - offset)
                complete = "?1" if offset + n == size else "?0"
                self.tries += 1
                try:
                    r = self.request("PATCH", self.url, self.headers(**{
                        "Upload-Offset": str(offset), "Upload-Complete": complete,
                        "Content-Type": "application/partial-upload"}), body=(f, offset, n))
                except (OSError, http.client.HTTPException) as e:
                    last = repr(e)
                else:
                    if r.status == 204:
                        offset, failures = int(r.getheader("Upload-Offset")), 0
                        if complete == "?1":
                            return {"url": self.url, "sent": self.sent, "tries": self.tries, "last": last}
                        continue
                    assert r.status >= 500 or r.status == 409, (r.status, r.getheaders())
                    last = r.status
                failures += 1
                assert failures <= self.max_tries, f"gave up after {failures} failures in a row: {last}"
                time.sleep(min(0.2 * failures, 2))


@not_under_sanitizers
def test_ietf_draft_client_through_a_bad_network(badnet_server, badnet, tmp_path):
    server, net = badnet_server, badnet
    path = tmp_path / "clip.mp4"
    sha = make_video(path, SIZE)
    token = server.token("--scope", "upload", "--user", "u-draft", "--album", "fam_draft")
    res = DraftClient(f"http://127.0.0.1:{net.port}", token).upload(path)
    got = wait_stored(server, [sha])
    assert got.get(sha) == SIZE, f"the stored original is not the file (seed {net.seed}): {j(got)} {j(res)}"
    check_cost(net, res["sent"], SIZE, CHUNK, "IETF draft client")


@needs_node
def test_http2_uploads_sharing_a_connection_through_a_bad_network(badnet_server, badnet, tmp_path):
    """Four uploads on one h2c connection: a cut kills every stream on it at once; each upload
    resumes (HEAD, then PATCH from the offset) on a new connection shared again."""
    server, net = badnet_server, badnet
    net.cut_response = 0.0  # the server's WINDOW_UPDATEs flow all along: it would cut at once
    # 1 MiB appends: the four streams' bodies in flight together (4 MiB) fit between two cuts
    # (6 MiB at least), else no append would ever get through whole
    n, chunk = 4, MiB
    each = SIZE // n
    files, shas = [], []
    for i in range(n):
        path = tmp_path / f"clip{i}.mp4"
        shas.append(make_video(path, each + i * 1234))
        files.append(str(path))
    token = server.token("--scope", "upload", "--user", "u-h2", "--album", "fam_h2")
    args = [NODE, str(NODE_DIR / "h2upload.mjs"), f"http://127.0.0.1:{net.port}", token, str(chunk), *files,
            "--timeout-s", str(TIMEOUT)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT + 20, cwd=NODE_DIR)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, f"h2upload.mjs printed nothing (exit {p.returncode}): {p.stderr[-3000:]}"
    res = json.loads(lines[-1])
    assert res["ok"] and p.returncode == 0, f"{j(res)} {p.stderr[-3000:]} seed {net.seed}"
    got = wait_stored(server, shas)
    for path, sha in zip(files, shas):
        assert got.get(sha) == os.path.getsize(path), f"{path} not stored byte-identical (seed {net.seed}): {j(got)}"
    # all on one connection at a time: a cut took several uploads' streams down together
    assert any(d["inFlight"] >= 2 for d in res["deaths"]), j(res)
    assert res["connections"] >= 2, j(res)
    total = sum(os.path.getsize(f) for f in files)
    sent = sum(u["bytesSent"] for u in res["uploads"])
    st = net.stats()
    print(f"HTTP/2: {n} uploads, {res['connections']} connections, deaths {j(res['deaths'])}", flush=True)
    # a cut of the shared connection may cost every upload its request body in flight
    cuts = len(st["cuts"])
    assert cuts >= 2 and any(c["where"] == "body" for c in st["cuts"]), j(st)
    assert total <= sent <= total + cuts * n * chunk, f"sent {sent} for {total}, {cuts} cuts: {j(st)}"
    print(f"HTTP/2: files {total} bytes, sent {sent} ({sent / total:.3f} x), {cuts} cuts, seed {st['seed']}")
