"""Scale-out (issue 12): three mediaedge processes, two `api` and one `worker`, on one Swift
(storage.backend: s3) and one Redis (queue.backend: redis, the upload locks), the two api
instances behind Debian's haproxy doing plain HTTP round robin per request (no stickiness, no
server connection reuse), so that consecutive PATCHes of one upload land on different
instances. What a user notices:

- a tus-js-client upload whose PATCHes alternate between the instances completes, byte-identical;
- one api instance killed (kill -9) mid-upload: the client's retries land on the other (haproxy's
  health checks and redispatch skip the dead one) and the upload completes, byte-identical;
- concurrent uploads across the instances all reach `ready`, every SHA-256 the source's
  (8 in check, 20 with ME_LONG=1);
- the worker killed (kill -9) while it holds a photo job: another worker started afterwards
  takes the job over (queue.claim_after) and the media becomes ready, processed once.

Which instance answered what comes from haproxy's log (one line per request: server, method,
path, status), written to a file as it goes, so the lines of a killed instance's requests are
there too. The module shares one cluster between its cases (module fixture) to keep its time."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

import swift_s3
from conftest import RedisServer, Server, free_port, metric
from test_uploads import Client

NODE = shutil.which("node")
NODE_DIR = Path(__file__).resolve().parent / "node"
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
LONG = os.environ.get("ME_LONG") == "1"
CONCURRENT = 20 if LONG else 8
MiB = 1 << 20

pytestmark = [
    pytest.mark.skipif("s3" not in swift_s3.BACKENDS, reason="ME_S3=0: no Swift in this run"),
    pytest.mark.skipif(HAPROXY is None, reason="needs haproxy (./bootstrap check installs it)"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert"),
    pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir(),
                       reason="needs node and tus-js-client: npm ci --prefix tests/integration/node"),
]

HAPROXY_CFG = """
global
    log stdout format raw local0
    maxconn 512
defaults
    mode http
    log global
    log-format "%s %HM %HU %ST %rc"
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # a connection refused by a dead instance goes to the other one
    retries 3
    option redispatch 1
    # each request is balanced on its own: no server connection kept or shared, no stickiness
    option http-server-close
    http-reuse never
listen api
    bind 127.0.0.1:{port}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # a frozen instance is taken out only after about 1.5 s (the kill case catches a PATCH on it);
    # a dead one refuses connections at once, and those are redispatched (above)
    default-server check inter 500ms fall 3 rise 2
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b}
"""


class Haproxy:
    def __init__(self, tmp, ports):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cfg = tmp / "haproxy.cfg"
        self.cfg.write_text(HAPROXY_CFG.format(port=self.port, a=ports[0], b=ports[1]))
        self.log_path = tmp / "haproxy.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)], stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        raise RuntimeError("haproxy did not start: " + self.log_path.read_text())

    def requests(self, method=None, path=None, retried=False):
        """(server, method, path, status) of every request logged so far; retried: only those
        haproxy sent again (to another server) after their first server failed."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            f = line.split()
            if len(f) == 5 and f[3].lstrip("-").isdigit() and (method is None or f[1] == method) and (
                    path is None or f[2] == path) and (not retried or f[4] not in ("0", "+0")):
                out.append((f[0].split("/")[-1], f[1], f[2], int(f[3])))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Cluster:
    """Swift, Redis, api a and b behind haproxy, one worker; servers share the first one's bucket
    and secrets (tokens minted by one are good on all)."""

    def __init__(self, tmp, swift_session):
        self.tmp = tmp
        (tmp / "redis").mkdir()
        self.redis = RedisServer(tmp / "redis").start()
        self.env = {"MEDIAEDGE_QUEUE_BACKEND": "redis", "MEDIAEDGE_REDIS_URL": self.redis.url,
                    "MEDIAEDGE_REDIS_LOCK_TTL": "2s", "MEDIAEDGE_QUEUE_CLAIM_AFTER": "2s",
                    "MEDIAEDGE_JOBS_WORKERS": "2", "MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "8MiB"}
        self.servers = []
        first = self._server("a", "api", s3=swift_session)
        self.env.update({k: v for k, v in first.env.items()
                         if k.startswith(("MEDIAEDGE_S3_", "MEDIAEDGE_TOKENS_", "MEDIAEDGE_STORAGE_BACKEND", "AWS_",
                                          "MEDIAEDGE_CDN_", "MEDIAEDGE_TLS_", "MEDIAEDGE_SERVER_DEMO_PAGE"))})
        self.storage = first.storage
        self.a = first.start()
        self.b = self._server("b", "api").start()
        self.worker = self._server("w1", "worker").start()
        self.proxy = Haproxy(tmp, [self.a.http_port, self.b.http_port])
        self.client = Client(self.a)

    def _server(self, name, role, **kw):
        d = self.tmp / name
        d.mkdir()
        s = Server(d, env={**self.env, "MEDIAEDGE_SERVER_ROLE": role}, **kw)
        self.servers.append(s)
        return s

    def new_worker(self, name):
        return self._server(name, "worker").start()

    def stop(self):
        self.proxy.stop()
        for s in self.servers:
            s.stop()
        self.redis.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, swift_session):
    c = Cluster(tmp_path_factory.mktemp("scaleout"), swift_session)
    yield c
    c.stop()


def upload_args(cluster, path, chunk, *extra, timeout=40):
    return [NODE, str(NODE_DIR / "upload.mjs"), cluster.proxy.url + "/v1/uploads", cluster.client.token, str(path),
            str(chunk), "--timeout-s", str(timeout), "--url-storage", str(path) + ".urls", *extra]


def result(p, out, err):
    import json
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert lines, f"upload.mjs printed no result (exit {p.returncode}): {out[-2000:]} {err[-2000:]}"
    res = json.loads(lines[-1])
    assert res["ok"] and p.returncode == 0, (res, err[-2000:])
    return res


def upload_path(res):
    return "/v1/uploads/" + res["url"].rsplit("/", 1)[1]


def photos(tmp, specs):
    """Noisy JPEGs (different per seed), made in parallel: specs is [(name, size, seed)]; their paths."""
    procs = [subprocess.Popen(["convert", "-seed", str(seed), "-size", size, "xc:gray", "+noise", "Random",
                               "-quality", "90", str(tmp / name)]) for name, size, seed in specs]
    for p in procs:
        assert p.wait(timeout=60) == 0
    return [tmp / name for name, _, _ in specs]


def photo(tmp, name, size="900x700", seed=1):
    return photos(tmp, [(name, size, seed)])[0]


def manifest(cluster, media_id):
    import json
    try:
        return json.loads(cluster.storage.read(f"media/{media_id}.json"))
    except FileNotFoundError:
        return None


def wait_status(cluster, media_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = manifest(cluster, media_id)
        if m is not None and m.get("status") in ("ready", "failed"):
            return m
        time.sleep(0.1)
    raise AssertionError(f"media {media_id} not ready in {timeout} s: {manifest(cluster, media_id)}")


def pending(cluster, lane="photo"):
    return cluster.redis.cmd("XPENDING", f"mediaedge:q:{lane}:stream", "workers")[0]


def unread(port):
    """The largest count of bytes waiting unread in a connection accepted on port."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    return max([int(l.split()[0]) for l in out.splitlines() if l.split()] or [0])


def test_patches_of_one_upload_land_on_both_instances(cluster, tmp_path):
    path = tmp_path / "six.jpg"
    data = photo(tmp_path, "six.jpg", size="2200x1600").read_bytes()
    assert len(data) > 4 * (512 << 10), len(data)  # several PATCHes
    p = subprocess.run(upload_args(cluster, path, 512 << 10), capture_output=True, text=True, timeout=60,
                       cwd=NODE_DIR)
    res = result(p, p.stdout, p.stderr)
    assert cluster.storage.read(f"originals/a1/{res['mediaId']}") == data
    served = cluster.proxy.requests("PATCH", upload_path(res))
    assert {s for s, _, _, status in served if status == 204} == {"a", "b"}, served
    # consecutive PATCHes alternate: round robin per request, not per connection
    assert len(served) >= 4 and all(served[i][0] != served[i + 1][0] for i in range(len(served) - 1)), served
    # the instances' own access logs agree (each logged PATCHes of this upload)
    deadline = time.time() + 5
    while time.time() < deadline:
        logged = [sum(1 for l in s.log_lines() if l.get("type") == "access" and l.get("method") == "PATCH"
                      and l.get("path") == upload_path(res)) for s in (cluster.a, cluster.b)]
        if sum(logged) == len(served):
            break
        time.sleep(0.1)
    assert min(logged) >= 1 and sum(logged) == len(served), (logged, served)
    assert wait_status(cluster, res["mediaId"])["status"] == "ready"


def test_concurrent_uploads_across_instances_all_ready(cluster, tmp_path):
    paths = photos(tmp_path, [(f"c{i}.jpg", "900x700", 100 + i) for i in range(CONCURRENT)])
    started = time.time()
    procs = [subprocess.Popen(upload_args(cluster, path, 128 << 10), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=NODE_DIR) for path in paths]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        results.append(result(p, out, err))
    uploaded = time.time()
    ids = [r["mediaId"] for r in results]
    assert len(set(ids)) == CONCURRENT
    for path, r in zip(paths, results):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        m = wait_status(cluster, r["mediaId"])
        assert m["status"] == "ready", m
        assert m["original"]["sha256"] == sha
        assert hashlib.sha256(cluster.storage.read(f"originals/a1/{r['mediaId']}")).hexdigest() == sha
        assert "thumb.jpg" in m["variants"]
    ready = time.time()
    # round robin over every client's requests: both instances took a fair share of the PATCHes
    # (whether one upload's PATCHes alternate depends on how the clients' requests interleave:
    # clients in step can each keep meeting the same instance; the first case shows alternation)
    patches = [s for r in results for s, _, _, st in cluster.proxy.requests("PATCH", upload_path(r)) if st == 204]
    assert min(patches.count("a"), patches.count("b")) >= len(patches) // 4, patches
    served = [{s for s, _, _, st in cluster.proxy.requests("PATCH", upload_path(r)) if st == 204} for r in results]
    print(f"\nscaleout: {CONCURRENT} concurrent uploads done in {uploaded - started:.2f}s, all ready after "
          f"{ready - started:.2f}s; {sum(s == {'a', 'b'} for s in served)} with PATCHes on both instances")


def test_api_instance_killed_mid_upload_the_retry_lands_on_the_other(cluster, tmp_path):
    path = tmp_path / "killed.jpg"
    data = photo(tmp_path, "killed.jpg", size="2200x1600", seed=7).read_bytes()
    chunk = 256 << 10
    assert len(data) > 8 * chunk
    # a slow client (150 ms before each PATCH), retrying as the apps do
    p = subprocess.Popen(upload_args(cluster, path, chunk, "--delay-ms", "150", "--retry-delays",
                                     "100,200,400,800,1000,1000,1000,1000,1000,1000"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=NODE_DIR)
    # the upload's URL is in the client's URL storage once POST answered; once a PATCH of it was
    # answered by a, a is frozen (SIGSTOP) so that the next PATCH sent its way waits, unread, in
    # its socket (seen with ss: a Recv-Q larger than any health check's request); then kill -9
    victim = cluster.a
    urls = Path(str(path) + ".urls")
    deadline = time.time() + 30
    upload = None
    while time.time() < deadline:
        if upload is None and urls.exists():
            m = re.search(r"/v1/uploads/([A-Za-z0-9_-]+)", urls.read_text())
            upload = m and m.group(0)
        if upload is not None and any(s == "a" and st == 204 for s, _, _, st in cluster.proxy.requests("PATCH", upload)):
            break
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    else:
        pytest.fail("no PATCH reached instance a")
    victim.signal(signal.SIGSTOP)
    try:
        deadline = time.time() + 20
        while unread(victim.http_port) < 16384 and time.time() < deadline:
            assert p.poll() is None, p.communicate()
            time.sleep(0.01)
        assert unread(victim.http_port) >= 16384, "no PATCH came to the frozen instance"
        killed_at = len(cluster.proxy.requests())
    finally:
        victim.proc.kill()  # kill -9, with a PATCH in flight
        victim.proc.wait()
    out, err = p.communicate(timeout=60)
    res = result(p, out, err)
    assert upload_path(res) == upload
    assert cluster.storage.read(f"originals/a1/{res['mediaId']}") == data
    served = cluster.proxy.requests("PATCH", upload)
    assert any(s == "a" and st == 204 for s, _, _, st in served)  # before the kill
    # the PATCH in flight when a died was sent again to b: by haproxy itself (a connection reset
    # before any answer byte is retried, redispatched), or else by the client after a 5xx
    resent = cluster.proxy.requests("PATCH", upload, retried=True)
    assert any(s == "b" and st == 204 for s, _, _, st in resent) or (
        res["retries"] >= 1 and any(s == "a" and st >= 500 for s, _, _, st in served)), (served, resent, res)
    after = cluster.proxy.requests()[killed_at:]
    assert any(s == "b" and m == "PATCH" and u == upload and st == 204 for s, m, u, st in after), after
    assert not any(s == "a" and st < 500 for s, _, _, st in after), after  # nothing answered by the dead one
    assert wait_status(cluster, res["mediaId"])["status"] == "ready"
    print(f"\nscaleout: kill -9 of a mid-upload: {res['retries']} client retries, {len(resent)} PATCHes resent "
          f"by haproxy, {len(served)} PATCHes "
          f"({sum(s == 'a' for s, *_ in served)} on a, {sum(s == 'b' for s, *_ in served)} on b)")
    # back in the pool for what follows
    victim.proc.stdout.close()
    victim.log.close()
    victim.start()


def test_worker_killed_holding_a_photo_job_another_finishes_it(cluster, tmp_path):
    """A large photo keeps the worker busy for a while (download from S3, decode of 12 MP); the
    worker is killed when the Redis stream shows the job pending (taken); caught before ready,
    a new worker takes it over after claim_after and makes it ready, once."""
    big = photo(tmp_path, "big.jpg", size="4000x3000", seed=11).read_bytes()
    c = Client(cluster.b)
    for attempt in range(4):
        _, r = c.upload(big, chunk=8 * MiB)
        media_id = r.headers["media-id"]
        deadline = time.time() + 30
        while pending(cluster) == 0 and time.time() < deadline:
            time.sleep(0.002)
        cluster.worker.proc.kill()
        cluster.worker.proc.wait()
        m = manifest(cluster, media_id)
        if m is not None and m.get("status") != "ready":
            break
        cluster.worker = cluster.new_worker(f"w-retry{attempt}")
    else:
        pytest.fail("the worker was never caught holding the job")
    assert pending(cluster) == 1  # still the dead worker's
    w2 = cluster.new_worker("w2")
    cluster.worker = w2
    m = wait_status(cluster, media_id, timeout=60)
    assert m["status"] == "ready", m
    assert "thumb.jpg" in m["variants"]
    assert cluster.storage.exists(f"variants/a1/{media_id}/thumb.jpg")
    assert any("taken over" in l.get("msg", "") for l in w2.log_lines())
    assert metric(w2, 'mediaedge_jobs_total{kind="photo",outcome="ready"}') == 1  # processed once
    deadline = time.time() + 10
    while pending(cluster) != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert pending(cluster) == 0
    assert cluster.redis.cmd("HLEN", "mediaedge:q:photo:ids") == 0
