"""bench/sustained_lib.py: what bench/sustained and bench/sustained-rss share: a mediaedge of
role all (uploads, jobs and the origin in one process) in a temp dir, tokens, a photo, the
clients of the background load, and RSS sampling. Not a benchmark itself (not executable)."""
import http.client
import importlib.machinery
import json
import os
import subprocess
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
bu = importlib.machinery.SourceFileLoader("bench_uploads", os.path.join(HERE, "uploads")).load_module()
Failed = bu.Failed
say = bu.say
report = bu.report
SECRET = "bench-secret-0123456789abcdef-0123456789"


def start_server(tmp):
    """A mediaedge of role all, its data in tmp; returns (server, {scope: token})."""
    bu.tmp = tmp
    srv = bu.Mediaedge(1)
    srv.env["MEDIAEDGE_SERVER_ROLE"] = "all"
    srv.env["MEDIAEDGE_TOKENS_HS256_SECRET"] = SECRET
    tokens = {}
    for scope in ("upload", "admin"):
        out = subprocess.run([bu.BIN, "token", "--scope", scope, "--user", "bench", "--album", "bench", "--ttl", "86400"],
                             env=srv.env, cwd=tmp, stdout=subprocess.PIPE, text=True, check=True)
        tokens[scope] = out.stdout.strip().splitlines()[-1]
    srv.start()
    return srv, tokens


def make_photo(tmp, w=2016, h=1512):
    """A 3 MP photo-like JPEG (noise, quality 90); returns its bytes."""
    v = os.path.join(tmp, "noise.v")
    out = os.path.join(tmp, "photo.jpg")
    subprocess.run(["vips", "gaussnoise", v, str(w), str(h), "--sigma", "40", "--mean", "128"], check=True)
    subprocess.run(["vips", "cast", v, os.path.join(tmp, "noise8.v"), "uchar"], check=True)
    subprocess.run(["vips", "bandjoin", f"{os.path.join(tmp, 'noise8.v')} {os.path.join(tmp, 'noise8.v')} "
                    f"{os.path.join(tmp, 'noise8.v')}", os.path.join(tmp, "rgb.v")], check=True)
    subprocess.run(["vips", "copy", os.path.join(tmp, "rgb.v"), out + "[Q=90]"], check=True)
    for f in ("noise.v", "noise8.v", "rgb.v"):
        os.remove(os.path.join(tmp, f))
    with open(out, "rb") as f:
        return f.read()


def request(port, method, path, token, body=None, headers=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}", **(headers or {})}
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, r, data
    finally:
        conn.close()


def upload_whole(port, token, data):
    """POST, then one PATCH of everything; returns the media id."""
    st, r, _ = request(port, "POST", "/v1/uploads", token, headers={"Upload-Length": str(len(data))})
    if st != 201:
        raise Failed(f"POST: {st}")
    url = urllib.parse.urlsplit(r.getheader("Location")).path
    st, r, _ = request(port, "PATCH", url, token, body=data,
                       headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    if st != 204 or not r.getheader("Media-Id"):
        raise Failed(f"PATCH: {st}")
    return r.getheader("Media-Id")


def media_status(srv, media_id):
    try:
        with open(os.path.join(srv.storage, "media", f"{media_id}.json")) as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


class PhotoStream(threading.Thread):
    """Photos uploaded one after another, each waited for until ready (or failed); with delete,
    each is then read back (GET /v1/media/<id>, then its thumbnail through its signed URL: the
    origin) and deleted, so that a long run keeps the disk as it was."""

    def __init__(self, srv, tokens, photo, delete=False, pause=0.0):
        super().__init__(daemon=True)
        self.srv, self.tokens, self.photo, self.delete, self.pause = srv, tokens, photo, delete, pause
        self.stop = threading.Event()
        self.ready = self.failed = self.reads = 0
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                mid = upload_whole(self.srv.port, self.tokens["upload"], self.photo)
                deadline = time.time() + 300
                while (s := media_status(self.srv, mid)) not in ("ready", "failed") and time.time() < deadline:
                    time.sleep(0.05)
                if s != "ready":
                    self.failed += 1
                    self.errors.append(f"media {mid}: {s}")
                    continue
                self.ready += 1
                if self.delete:
                    self.read_and_delete(mid)
            except (OSError, http.client.HTTPException, Failed) as e:
                self.errors.append(f"{type(e).__name__}: {e}")
            if self.pause:
                self.stop.wait(self.pause)

    def read_and_delete(self, mid):
        port, admin = self.srv.port, self.tokens["admin"]
        st, _, body = request(port, "GET", f"/v1/media/{mid}", admin)
        if st != 200:
            raise Failed(f"GET /v1/media: {st}")
        for name, v in json.loads(body)["variants"].items():
            u = urllib.parse.urlsplit(v["url"])
            st, _, data = request(port, "GET", u.path + "?" + u.query, admin)
            if st != 200 or len(data) != v["bytes"]:
                raise Failed(f"origin GET {name}: {st}, {len(data)} bytes")
            self.reads += 1
        st, _, _ = request(port, "DELETE", f"/v1/media/{mid}", admin)
        if st not in (200, 202, 204):
            raise Failed(f"DELETE /v1/media: {st}")


class LargeUploads:
    """n uploads at a time, over and over (bench/uploads' client: POST, then PATCHes of
    chunk bytes), until stopped; with delete each finished one is deleted (DELETE /v1/media)."""

    def __init__(self, srv, tokens, n, size, chunk, delete=False, pause=0.0):
        self.srv, self.tokens, self.delete, self.pause = srv, tokens, delete, pause
        self.data = bu.MAGIC + os.urandom(size - len(bu.MAGIC))
        bu.CHUNK = chunk
        self.stop = threading.Event()
        self.done = 0
        self.bytes = 0
        self.errors = []
        self.busy_503 = 0
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(n)]

    def loop(self):
        go = threading.Event()
        go.set()
        while not self.stop.is_set():
            r = bu.Upload()
            bu.one_upload(self.srv.port, self.srv.path, self.tokens["upload"], self.data, go, r)
            self.bytes += r.sent
            self.busy_503 += r.statuses.get(503, 0)
            if r.complete:
                self.done += 1
            else:
                self.errors.extend(r.exceptions or [f"incomplete: {r.statuses}"])
            if self.delete and r.media_id:
                try:
                    st, _, _ = request(self.srv.port, "DELETE", f"/v1/media/{r.media_id}", self.tokens["admin"])
                    if st not in (200, 202, 204):
                        self.errors.append(f"DELETE: {st}")
                except (OSError, http.client.HTTPException) as e:
                    self.errors.append(f"DELETE: {e}")
            if self.pause:
                self.stop.wait(self.pause)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """VmRSS of pid every `every` seconds: samples [(seconds since start, KiB)]."""

    def __init__(self, pid, every):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples = []
        self.halt = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while True:
            v = rss_kib(self.pid)
            if v is not None:
                self.samples.append((time.monotonic() - self.t0, v))
            if self.halt.wait(self.every):
                return

    def finish(self):
        self.halt.set()
        self.join()
        return self.samples


def slope_kib_per_min(samples):
    """Least-squares slope of (seconds, KiB) in KiB per minute."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return sxy / sxx * 60 if sxx else float("nan")
