"""Several instances on one Redis (queue.backend: redis) and one storage directory: a tus upload
whose PATCHes alternate between two processes, concurrent PATCHes through both, a lock holder
frozen (SIGSTOP) past its TTL whose late commit is refused, a worker killed with kill -9 while
it holds a photo job, a worker stopped (SIGTERM) mid-video handing it back, and Redis restarted
(appendfsync always) or emptied mid-run, with the reconciler as the second net."""
import json
import signal
import shutil
import threading
import time

import pytest
import requests

from conftest import SANITIZED, metric, run
from test_uploads import Client, jpeg

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

# The longest scenarios run on the normal build only: the code they drive (lock checks, the
# queue's scripts, reconnection) runs under the sanitizers in the unit tests against a real
# Redis (test_lock_redis, test_jobq_redis, test_redis), and CI's time is counted.
not_under_sanitizers = pytest.mark.skipif(SANITIZED, reason="long; its code runs under the sanitizers in the unit tests")


def instances(make_server, redis_server, tmp_path, n=2, roles=("api",), **env):
    """n mediaedge processes on the same Redis and storage directory (not started)."""
    shared = {"MEDIAEDGE_QUEUE_BACKEND": "redis", "MEDIAEDGE_REDIS_URL": redis_server.url,
              "MEDIAEDGE_STORAGE_ROOT": str(tmp_path / "shared"), **env}
    return [make_server(env={**shared, "MEDIAEDGE_SERVER_ROLE": roles[i % len(roles)]}) for i in range(n)]


def on(server, url):
    """The same upload URL on another instance."""
    return server.http + url[url.index("/v1/"):]


def info(tmp_path, url):
    return json.loads((tmp_path / "shared" / "uploads" / (url.rsplit("/", 1)[1] + ".info")).read_text())


def stored(tmp_path, album, media_id):
    return (tmp_path / "shared" / "originals" / album / media_id).read_bytes()


def test_patches_alternate_between_instances(make_server, redis_server, tmp_path):
    a, b = [s.start() for s in instances(make_server, redis_server, tmp_path)]
    c = Client(a)
    data = jpeg(5 << 20)
    url = c.url(c.create(len(data)))
    off, i, r = 0, 0, None
    while off < len(data):
        r = c.patch(on((a, b)[i % 2], url), off, data[off:off + (512 << 10)])
        assert r.status_code == 204, r.text
        off, i = int(r.headers["upload-offset"]), i + 1
    assert i == 10
    for s in (a, b):  # either instance answers for it
        h = c.head(on(s, url))
        assert h.headers["upload-offset"] == str(len(data)) and h.headers["media-id"] == r.headers["media-id"]
    assert stored(tmp_path, "a1", r.headers["media-id"]) == data
    assert redis_server.cmd("KEYS", "mediaedge:lock:*") == []  # every lock given back
    assert int(redis_server.cmd("GET", "mediaedge:lock-fence")) >= 10


def test_concurrent_patches_through_both_instances(make_server, redis_server, tmp_path):
    a, b = [s.start() for s in instances(make_server, redis_server, tmp_path)]
    c = Client(a)
    chunk, rounds = 1 << 20, 6
    data = jpeg(chunk * rounds)
    url = c.url(c.create(len(data)))
    for k in range(rounds):
        results, gate = [], threading.Barrier(4)

        def go(s):
            gate.wait()
            results.append(c.patch(on(s, url), k * chunk, data[k * chunk:(k + 1) * chunk]).status_code)

        threads = [threading.Thread(target=go, args=(s,)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(204) == 1, results
        assert all(code in (204, 409, 423) for code in results), results
    h = c.head(on(b, url))
    assert h.headers["upload-offset"] == str(len(data))
    assert stored(tmp_path, "a1", h.headers["media-id"]) == data


def test_redis_down_patch_gets_503_and_the_upload_resumes(make_server, redis_server, tmp_path):
    """Redis (the upload locks) stops answering mid-upload: a PATCH or DELETE is told to come back
    (503, Retry-After, lock_unavailable), not that another request holds the upload (423), and
    nothing is stored; Redis back, the same upload resumes where it was and completes."""
    a, b = [s.start() for s in instances(make_server, redis_server, tmp_path, MEDIAEDGE_REDIS_CONNECT_TIMEOUT="200ms")]
    c = Client(a)
    chunk = 256 << 10
    data = jpeg(4 * chunk)
    url = c.url(c.create(len(data)))
    r = c.patch(url, 0, data[:chunk])
    assert r.status_code == 204, r.text
    redis_server.stop(signal.SIGKILL)
    try:
        for s in (a, b):
            r = c.patch(on(s, url), chunk, data[chunk:2 * chunk])
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.json()["error"] == "lock_unavailable", r.text
            assert int(r.headers["retry-after"]) > 0
        r = requests.delete(on(b, url), headers=c.h())
        assert r.status_code == 503 and r.json()["error"] == "lock_unavailable", (r.status_code, r.text)
        assert info(tmp_path, url)["offset"] == chunk  # nothing of the refused PATCHes counted
        assert a.proc.poll() is None and b.proc.poll() is None
    finally:
        redis_server.start()
    assert int(c.head(on(b, url)).headers["upload-offset"]) == chunk
    off = chunk
    while off < len(data):
        r = c.patch(on((b, a)[off // chunk % 2], url), off, data[off:off + chunk])
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
    assert stored(tmp_path, "a1", r.headers["media-id"]) == data
    assert metric(a, 'mediaedge_uploads_refused_total{reason="lock_unavailable"}') == 1


@not_under_sanitizers
def test_frozen_lock_holder_cannot_commit(make_server, redis_server, tmp_path):
    """A is frozen (SIGSTOP) holding the upload's lock, before its commit; its lock expires (1 s
    TTL, nobody renews it), B takes the upload over from what storage holds (A's part when A
    froze after storing it, else not); A wakes (SIGCONT): its commit is refused (423), the state
    is B's, and the upload completes byte for byte."""
    a, b = [s.start() for s in instances(make_server, redis_server, tmp_path, MEDIAEDGE_REDIS_LOCK_TTL="1s")]
    c = Client(a)
    chunk = 16 << 20
    data = jpeg(4 * chunk)
    url = c.url(c.create(len(data)))
    lock = "mediaedge:lock:" + url.rsplit("/", 1)[1]

    def send(server, off, out):
        out["r"] = c.patch(on(server, url), off, data[off:off + chunk])

    # the file backend's bytes of the upload: A is caught while it writes them (it froze inside
    # its longest step; lock.h tells the narrow window before it that fencing cannot close)
    part_data = tmp_path / "shared" / ".multipart" / info(tmp_path, url)["multipart"] / "data"
    off = 0
    for attempt in range(8):  # until A is caught holding the lock before its commit
        got_a = {}
        ta = threading.Thread(target=send, args=(a, off, got_a))
        ta.start()
        deadline = time.time() + 10
        while ta.is_alive() and time.time() < deadline and (
                not part_data.exists() or part_data.stat().st_size <= off):
            pass
        a.signal(signal.SIGSTOP)
        if ta.is_alive() and redis_server.cmd("EXISTS", lock) == 1 and info(tmp_path, url)["offset"] == off:
            break
        a.signal(signal.SIGCONT)
        ta.join()
        assert got_a["r"].status_code == 204, got_a["r"].text
        off = int(got_a["r"].headers["upload-offset"])
        assert off < len(data) - 2 * chunk, "the upload ran out before A was caught"  # B's PATCH must not end it
    else:
        pytest.fail("A was never caught holding the lock")
    got_b = {}
    try:
        time.sleep(1.5)  # past the TTL
        assert redis_server.cmd("EXISTS", lock) == 0
        # A saved no state; its part counts if A stored it whole before it froze. The HEAD
        # never waits for a part write of the frozen A (it holds that file's lock)
        held = int(c.head(on(b, url)).headers["upload-offset"])
        assert held in (off, off + chunk)
        off = held
        # B sends the next bytes; on the file backend it may wait for A's part write to end
        tb = threading.Thread(target=send, args=(b, off, got_b))
        tb.start()
        tb.join(2)
    finally:
        a.signal(signal.SIGCONT)
    ta.join()
    tb.join()
    assert got_a["r"].status_code == 423, got_a["r"].text  # A's commit refused
    if got_b["r"].status_code == 409:
        # B waited on the part file A held; A, woken, wrote its part whole before B looked: A's
        # bytes count, and B's client learns the offset with HEAD, as tus clients do on a 409
        assert got_b["r"].json()["error"] == "offset_mismatch", got_b["r"].text
        assert int(c.head(on(b, url)).headers["upload-offset"]) == off + chunk
    else:
        assert got_b["r"].status_code == 204, got_b["r"].text
    assert info(tmp_path, url)["offset"] == off + chunk
    assert metric(a, 'mediaedge_upload_locks_lost_total{at="commit"}') >= 1
    off += chunk
    r = got_b["r"]
    while off < len(data):
        r = c.patch(on((a, b)[off // chunk % 2], url), off, data[off:off + chunk])
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
    assert stored(tmp_path, "a1", r.headers["media-id"]) == data


# ---- jobs ----

def photo_bytes(tmp_path, size):
    import subprocess
    path = tmp_path / f"p{size}.jpg"
    subprocess.run(["convert", "-size", size, "gradient:red-blue", str(path)], check=True)
    return path.read_bytes()


def manifest(tmp_path, media_id):
    p = tmp_path / "shared" / "media" / f"{media_id}.json"
    return json.loads(p.read_text()) if p.exists() else None


def wait_status(tmp_path, media_id, statuses=("ready", "failed"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = manifest(tmp_path, media_id)
        if m and m["status"] in statuses:
            return m
        time.sleep(0.05)
    raise AssertionError(f"media {media_id}: {manifest(tmp_path, media_id)}")


def pending(redis_server, lane):
    return redis_server.cmd("XPENDING", f"mediaedge:q:{lane}:stream", "workers")[0]


def webhook_receiver(got, hold_first=None):
    """A webhook backend on loopback that appends (delivery id, event) to got and answers 204;
    with hold_first (an Event) the first delivery waits for it (at most 20 s) before answering.
    Stop it with .shutdown()."""
    import http.server

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.headers["Mediaedge-Delivery"], json.loads(body)["event"]))
            if hold_first is not None and len(got) == 1:
                hold_first.wait(20)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    return hook


needs_convert = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")


@needs_convert
def test_worker_killed_holding_a_photo_job_another_finishes_it(make_server, redis_server, tmp_path):
    api, w1, w2 = instances(make_server, redis_server, tmp_path, n=3, roles=("api", "worker", "worker"),
                            MEDIAEDGE_QUEUE_CLAIM_AFTER="2s", MEDIAEDGE_JOBS_WORKERS="1")
    api.start()
    w1.start()
    data = photo_bytes(tmp_path, "1200x900")  # w1's first photo: libvips starts, seconds to catch it
    for attempt in range(4):  # until w1 is caught holding the job
        _, r = Client(api).upload(data)
        media_id = r.headers["media-id"]
        deadline = time.time() + 20
        while pending(redis_server, "photo") == 0 and time.time() < deadline:
            time.sleep(0.002)
        w1.proc.kill()  # kill -9, holding the job (or just past it)
        w1.proc.wait()
        if manifest(tmp_path, media_id)["status"] != "ready":
            break
        w1 = instances(make_server, redis_server, tmp_path, roles=("worker",),
                       MEDIAEDGE_QUEUE_CLAIM_AFTER="2s", MEDIAEDGE_JOBS_WORKERS="1")[0].start()
    else:
        pytest.fail("the worker was never caught holding the job")
    assert pending(redis_server, "photo") == 1  # still w1's, which will never say done
    w2.start()
    m = wait_status(tmp_path, media_id, timeout=60)
    assert m["status"] == "ready", m
    assert "thumb.jpg" in m["variants"]
    assert (tmp_path / "shared" / "variants" / "a1" / media_id / "thumb.jpg").exists()
    assert any("taken over" in l.get("msg", "") for l in w2.log_lines())
    deadline = time.time() + 10
    while pending(redis_server, "photo") != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert pending(redis_server, "photo") == 0
    assert redis_server.cmd("HLEN", "mediaedge:q:photo:ids") == 0


@needs_convert
def test_completion_cut_short_after_its_job_was_queued_is_not_processed_twice(make_server, redis_server, tmp_path):
    """An API instance dies once a completion has stored the media's manifest and job and queued
    it, before the upload's state says completed (Redis going away at that moment ends the same
    way, the client answered 503). The worker makes the media ready; the client's HEAD then
    finishes the upload's completion without making the media again: the same ready manifest,
    no second job, one run. (The sweep, which would finish it too, runs only at each start
    here: its first pass comes before the upload, so nothing finishes it before the HEAD.)"""
    api, worker = instances(make_server, redis_server, tmp_path, roles=("api", "worker"),
                            MEDIAEDGE_REDIS_LOCK_TTL="1s", MEDIAEDGE_UPLOADS_SWEEP_EVERY="24h")
    api.env["MEDIAEDGE_FAILPOINT"] = "upload.job_queued"
    api.start()
    worker.start()
    data = photo_bytes(tmp_path, "640x480")
    c = Client(api)
    url = c.url(c.create(len(data)))
    with pytest.raises(requests.ConnectionError):
        c.patch(url, 0, data)
    assert api.proc.wait(timeout=30) == -signal.SIGKILL
    assert info(tmp_path, url)["state"] == "completing"
    media_id = info(tmp_path, url)["media_id"]
    m = wait_status(tmp_path, media_id)
    assert m["status"] == "ready", m
    api.stop()
    api.env.pop("MEDIAEDGE_FAILPOINT")
    api.start()
    deadline = time.time() + 30
    while (r := c.head(url)).status_code == 423 and time.time() < deadline:  # the dead one's lock, 1 s
        time.sleep(0.1)
    assert r.status_code == 200 and r.headers["media-id"] == media_id, (r.status_code, r.text)
    assert info(tmp_path, url)["state"] == "completed"
    assert manifest(tmp_path, media_id) == m  # not set back to uploaded
    assert not (tmp_path / "shared" / "jobs" / f"{media_id}.json").exists()
    time.sleep(0.5)  # the HEAD queued the media again: its job is gone, the worker only drops it
    assert metric(worker, 'mediaedge_jobs_total{kind="photo",outcome="ready"}') == 1
    assert manifest(tmp_path, media_id) == m


@needs_convert
@not_under_sanitizers
def test_poison_job_fails_after_max_deliveries(make_server, redis_server, tmp_path):
    """A job whose worker dies every time it starts it (here: kill -9 as soon as the job's
    document records the start) is not passed from worker to worker forever: with
    jobs.max_deliveries 2, the third worker to take it marks the media failed, sends one
    media.failed webhook, and the entry leaves the stream."""
    import subprocess
    got = []
    hook = webhook_receiver(got)
    env = dict(MEDIAEDGE_QUEUE_CLAIM_AFTER="1s", MEDIAEDGE_JOBS_WORKERS="1", MEDIAEDGE_JOBS_MAX_DELIVERIES="2",
               MEDIAEDGE_WEBHOOKS_URL=f"http://127.0.0.1:{hook.server_address[1]}/h",
               MEDIAEDGE_WEBHOOKS_SECRET="whsec-poison-test")
    try:
        api, w1 = instances(make_server, redis_server, tmp_path, roles=("api", "worker"), **env)
        api.start()
        # a large noisy photo: seconds of work after the start is recorded, to be killed in
        big = tmp_path / "big.jpg"
        subprocess.run(["convert", "-size", "4000x3000", "xc:gray", "+noise", "Random", "-quality", "90", str(big)],
                       check=True, timeout=60)
        _, r = Client(api).upload(big.read_bytes(), chunk=8 << 20)
        media_id = r.headers["media-id"]
        job = tmp_path / "shared" / "jobs" / f"{media_id}.json"

        def starts():
            try:
                return json.loads(job.read_text()).get("starts", 0)
            except (FileNotFoundError, ValueError):
                return 0

        worker = w1
        for k in (1, 2):  # each worker dies as soon as it has started the job
            worker.start()
            deadline = time.time() + 30
            while starts() < k and time.time() < deadline:
                time.sleep(0.001)
            worker.proc.kill()
            worker.proc.wait()
            assert starts() == k, starts()
            assert manifest(tmp_path, media_id)["status"] in ("uploaded", "processing")  # killed before its end
            worker = instances(make_server, redis_server, tmp_path, roles=("worker",), **env)[0]
        worker.start()  # the third delivery: two starts died, the media fails
        m = wait_status(tmp_path, media_id, timeout=30)
        assert m["status"] == "failed", m
        assert m["error"]["code"] == "internal_error" and "started 2 times" in m["error"]["message"], m
        deadline = time.time() + 10  # the job's document goes after the manifest is stored
        while job.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert not job.exists()
        deadline = time.time() + 10
        while (pending(redis_server, "photo") != 0 or not got) and time.time() < deadline:
            time.sleep(0.05)
        assert pending(redis_server, "photo") == 0
        assert redis_server.cmd("HLEN", "mediaedge:q:photo:ids") == 0
        assert got == [(f"{media_id}-failed", "media.failed")], got
    finally:
        hook.shutdown()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@not_under_sanitizers
def test_worker_stopped_mid_video_hands_it_back(make_server, redis_server, tmp_path):
    import subprocess
    video = tmp_path / "slow.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=30:duration=8", "-c:v", "libx264", "-preset", "ultrafast", str(video)],
                   check=True, timeout=120)
    api, w1 = instances(make_server, redis_server, tmp_path, n=2, roles=("api", "worker"),
                        MEDIAEDGE_VIDEOS_PRESET="veryslow", MEDIAEDGE_QUEUE_CLAIM_AFTER="60s")
    api.start()
    w1.start()
    _, r = Client(api).upload(video.read_bytes())
    media_id = r.headers["media-id"]
    deadline = time.time() + 60
    while "progress" not in (manifest(tmp_path, media_id) or {}) and time.time() < deadline:
        time.sleep(0.05)
    assert manifest(tmp_path, media_id)["status"] == "processing"
    w2 = instances(make_server, redis_server, tmp_path, roles=("worker",), MEDIAEDGE_VIDEOS_PRESET="ultrafast",
                   MEDIAEDGE_QUEUE_CLAIM_AFTER="60s")[0].start()
    w1.signal(signal.SIGTERM)
    assert w1.wait(timeout=30) == 0
    # taken again at once by w2, long before a claim (60 s) could have moved it
    m = wait_status(tmp_path, media_id, timeout=45)
    assert m["status"] == "ready", m
    assert "720p.mp4" in m["variants"]
    assert any("handed back" in l.get("msg", "") for l in w1.log_lines())
    assert not any("taken over" in l.get("msg", "") for l in w2.log_lines())


@needs_convert
@not_under_sanitizers
def test_redis_restarted_or_emptied_loses_no_job(make_server, redis_server, tmp_path):
    """Jobs the API queued while the worker was frozen survive a kill -9 of Redis (AOF with
    appendfsync always); jobs whose entries Redis then loses altogether (a failover to an empty
    replica) are queued again by the worker's reconciler, without any restart."""
    env = dict(MEDIAEDGE_JOBS_RECONCILE_EVERY="1s", MEDIAEDGE_JOBS_STALE_AFTER="1s")
    api, worker = [s.start() for s in instances(make_server, redis_server, tmp_path, roles=("api", "worker"), **env)]
    data = photo_bytes(tmp_path, "400x300")
    worker.signal(signal.SIGSTOP)
    try:
        ids = [Client(api).upload(data)[1].headers["media-id"] for _ in range(3)]
        assert redis_server.cmd("HLEN", "mediaedge:q:photo:ids") == 3  # queued by the API for the workers
        # what the HPA scales workers on: every pod reports the shared queue's backlog (the
        # frozen worker's pops, sent before it froze, may have been handed an entry or two)
        def backlog():
            return (metric(api, 'mediaedge_queue_jobs{queue="photo",state="waiting"}'),
                    metric(api, 'mediaedge_queue_jobs{queue="photo",state="running"}'))
        deadline = time.time() + 10
        while sum(backlog()) != 3 and time.time() < deadline:
            time.sleep(0.1)
        assert sum(backlog()) == 3, backlog()
        if backlog()[0] > 0:
            assert metric(api, 'mediaedge_queue_oldest_waiting_seconds{queue="photo"}') > 0
        redis_server.restart(signal.SIGKILL)
        assert redis_server.cmd("HLEN", "mediaedge:q:photo:ids") == 3  # the AOF kept them
        assert redis_server.cmd("XLEN", "mediaedge:q:photo:stream") == 3
    finally:
        worker.signal(signal.SIGCONT)
    for media_id in ids:
        assert wait_status(tmp_path, media_id, timeout=60)["status"] == "ready"
    worker.signal(signal.SIGSTOP)
    try:
        lost = [Client(api).upload(data)[1].headers["media-id"] for _ in range(2)]
        redis_server.cmd("FLUSHALL")
    finally:
        worker.signal(signal.SIGCONT)
    for media_id in lost:
        assert wait_status(tmp_path, media_id, timeout=60)["status"] == "ready"
    assert any("reconciler queued" in l.get("msg", "") for l in worker.log_lines())
    assert worker.proc.poll() is None and api.proc.poll() is None


def test_configuration_of_the_queue_and_redis(tmp_path):
    base = {"MEDIAEDGE_QUEUE_BACKEND": "redis"}
    p = run("check-config", env=base, cwd=tmp_path)
    assert p.returncode == 2 and "redis.url is empty" in p.stderr
    p = run("check-config", env={**base, "MEDIAEDGE_REDIS_URL": "redis://app:hunter2-pw@cache:6380/1"}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "backend: redis" in p.stdout and "hunter2" not in p.stdout and "<redacted>" in p.stdout
    for bad, why in (("rediss://app:hunter2-pw@cache:6380", "TLS"), ("redis://app:hunter2-pw@cache:99999", "port"),
                     ("http://cache", "redis://")):
        p = run("check-config", env={**base, "MEDIAEDGE_REDIS_URL": bad}, cwd=tmp_path)
        assert p.returncode == 2 and why in p.stderr and "hunter2" not in p.stderr, p.stderr
    p = run("check-config", env={"MEDIAEDGE_QUEUE_BACKEND": "memcached"}, cwd=tmp_path)
    assert p.returncode == 2 and "MEDIAEDGE_QUEUE_BACKEND" in p.stderr


def test_no_redis_no_start(make_server, tmp_path):
    """A pod told to use a Redis that does not answer refuses to start, saying where (not how)."""
    s = make_server(env={"MEDIAEDGE_QUEUE_BACKEND": "redis", "MEDIAEDGE_REDIS_CONNECT_TIMEOUT": "200ms",
                         "MEDIAEDGE_REDIS_URL": "redis://:hunter2-pw@127.0.0.1:1/0"})
    with pytest.raises(RuntimeError):
        s.start()
    log = s.log_text()
    assert "redis://127.0.0.1:1/0" in log and "hunter2" not in log


@needs_convert
def test_webhook_of_a_dead_sender_is_delivered_by_another(make_server, redis_server, tmp_path):
    """A media.ready delivery is taken by one of the senders (every pod with webhooks.url sends:
    the worker that raised it, or the API pod); it is killed (kill -9) while the backend has not
    answered its POST; another instance takes the delivery over after queue.claim_after and
    delivers it, with the same delivery id."""
    got, release = [], threading.Event()
    hook = webhook_receiver(got, hold_first=release)  # the first one hangs: its sender dies meanwhile
    env = dict(MEDIAEDGE_WEBHOOKS_URL=f"http://127.0.0.1:{hook.server_address[1]}/h",
               MEDIAEDGE_WEBHOOKS_SECRET="whsec-redis-test", MEDIAEDGE_QUEUE_CLAIM_AFTER="2s")
    try:
        api, w1, w2 = instances(make_server, redis_server, tmp_path, n=3, roles=("api", "worker", "worker"), **env)
        api.start()
        w1.start()
        _, r = Client(api).upload(photo_bytes(tmp_path, "400x300"))
        media_id = r.headers["media-id"]
        deadline = time.time() + 30
        while not got and time.time() < deadline:
            time.sleep(0.02)
        assert got == [(f"{media_id}-ready", "media.ready")]
        # the sender is the consumer "<host>-<pid>-<random>" holding the entry
        holder_pid = int(redis_server.cmd("XPENDING", "mediaedge:q:hooks:stream", "workers", "-", "+", "1")[0][1]
                         .split("-")[-2])
        holder = next(s for s in (api, w1) if s.proc.pid == holder_pid)
        holder.proc.kill()
        holder.proc.wait()
        w2.start()
        deadline = time.time() + 30
        while len(got) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert got[1:] == [(f"{media_id}-ready", "media.ready")]  # the same delivery, from another
        doc = tmp_path / "shared" / "webhooks" / f"{media_id}-ready.json"
        deadline = time.time() + 10
        while doc.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert not doc.exists()  # delivered: gone
        survivors = [s for s in (api, w1, w2) if s is not holder]
        assert any("taken over" in l.get("msg", "") for s in survivors for l in s.log_lines())
    finally:
        release.set()
        hook.shutdown()
