"""From upload to ready: the job runner, the photo pipeline behind it, the manifest, the
webhooks (received and verified by an HTTP server in the test), kill -9 with jobs queued,
the reconciler, and a damaged video in the video lane (test_video.py has the real ones)."""
import hashlib
import hmac
import http.server
import json
import shutil
import signal
import subprocess
import threading
import time

import pytest

import swift_s3

from test_uploads import Client, original

SECRET = "whsec-integration"
pytestmark = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")


class Receiver(http.server.ThreadingHTTPServer):
    """Collects the webhook deliveries it is sent: (headers, body bytes)."""

    def __init__(self):
        self.deliveries = []
        self.status = 204  # what it answers
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.deliveries.append((dict(self.headers), body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def wait(self, n, timeout=30):
        deadline = time.time() + timeout
        while len(self.deliveries) < n and time.time() < deadline:
            time.sleep(0.05)
        return self.deliveries


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.shutdown()


def photo(tmp_path, name="p.jpg", size="1600x1200"):
    path = tmp_path / name
    subprocess.run(["convert", "-size", size, "gradient:red-blue", str(path)], check=True)
    return path.read_bytes()


def manifest(server, media_id):
    """The media's manifest in the server's storage (var/storage under its directory, which
    tests may move, or its bucket on S3), or None."""
    if server.backend == "file":
        p = server.dir / "var" / "storage" / "media" / f"{media_id}.json"
        return json.loads(p.read_text()) if p.exists() else None
    try:
        return json.loads(server.storage.read(f"media/{media_id}.json"))
    except FileNotFoundError:
        return None


def wait_status(server, media_id, statuses=("ready", "failed"), timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = manifest(server, media_id)
        if m and m["status"] in statuses:
            return m
        time.sleep(0.05)
    raise AssertionError(f"media {media_id}: {manifest(server, media_id)}")


def server_with_hooks(make_server, receiver, **env):
    return make_server(env={"MEDIAEDGE_SERVER_ROLE": "all", "MEDIAEDGE_WEBHOOKS_URL": receiver.url,
                            "MEDIAEDGE_WEBHOOKS_SECRET": SECRET, **env}).start()


def verify(headers, body):
    t, v1 = (kv.split("=", 1)[1] for kv in headers["Mediaedge-Signature"].split(","))
    want = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, want), "bad webhook signature"
    assert abs(int(t) - time.time()) < 300
    return json.loads(body)


def server_with_hooks_unless_s3(make_server, receiver, storage_backend):
    """A role-all server with webhooks on the file backend; on S3 (a production profile, which
    refuses a plain http:// webhook URL, and the receiver here has no certificate) without."""
    if storage_backend == "file":
        return server_with_hooks(make_server, receiver)
    return make_server(env={"MEDIAEDGE_SERVER_ROLE": "all"}).start()


# the photo path through storage on S3 too (one representative case: each costs seconds on Swift)
@pytest.mark.parametrize("storage_backend", swift_s3.BACKENDS)
def test_a_photo_becomes_ready_with_variants_and_the_backend_is_told(make_server, receiver, tmp_path, storage_backend):
    s = server_with_hooks_unless_s3(make_server, receiver, storage_backend)
    data = photo(tmp_path)
    _, r = Client(s, ref="order-42").upload(data)
    media_id = r.headers["media-id"]
    m = wait_status(s, media_id)
    assert m["status"] == "ready" and m["kind"] == "photo", m
    assert (m["original"]["width"], m["original"]["height"], m["original"]["format"]) == (1600, 1200, "jpeg")
    assert m["original"]["bytes"] > 0 and len(m["original"]["sha256"]) == 64 and m["processed_at"] >= m["created_at"]
    assert set(m["variants"]) == {f"{n}.{e}" for n in ("thumb", "small", "medium", "large") for e in ("jpg", "webp")}
    assert (m["variants"]["thumb.jpg"]["width"], m["variants"]["thumb.jpg"]["height"]) == (320, 320)
    assert (m["variants"]["large.webp"]["width"], m["variants"]["large.webp"]["height"]) == (1600, 1200)  # never upscaled
    for v in m["variants"].values():
        stored = s.storage.read(v["key"])
        assert len(stored) == v["bytes"] > 0
    assert original(s, "a1", media_id) == data
    if storage_backend == "file":
        (headers, body), = receiver.wait(1)  # raised before the job goes, which goes next
    for _ in range(100):
        if not s.storage.exists(f"jobs/{media_id}.json"):
            break
        time.sleep(0.05)
    assert not s.storage.exists(f"jobs/{media_id}.json")
    metrics = __import__("requests").get(s.http + "/metrics").text
    assert 'mediaedge_jobs_total{kind="photo",outcome="ready"} 1' in metrics
    if storage_backend != "file":
        return
    event = verify(headers, body)
    assert event["event"] == "media.ready" and event["id"] == f"{media_id}-ready"
    assert headers["Mediaedge-Delivery"] == event["id"]
    assert event["media"]["id"] == media_id and event["media"]["ref"] == "order-42"


def test_the_variants_come_from_the_configuration(make_server, receiver, tmp_path):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_PHOTOS_VARIANTS="tiny:64x64,wide:500,huge:4000")
    _, r = Client(s).upload(photo(tmp_path, size="1600x900"))
    media_id = r.headers["media-id"]
    m = wait_status(s, media_id)
    assert m["status"] == "ready", m
    sizes = {k: (v["width"], v["height"]) for k, v in m["variants"].items()}
    assert sizes == {"tiny.jpg": (64, 64), "tiny.webp": (64, 64), "wide.jpg": (500, 281), "wide.webp": (500, 281),
                     "huge.jpg": (1600, 900), "huge.webp": (1600, 900)}, sizes
    stored = sorted(p.name for p in (s.dir / "var" / "storage" / "variants" / "a1" / media_id).iterdir())
    assert stored == sorted(sizes)


def test_a_damaged_photo_fails_with_a_code(make_server, receiver, tmp_path):
    s = server_with_hooks(make_server, receiver)
    data = photo(tmp_path)
    cut = data[:len(data) // 2]
    _, r = Client(s).upload(cut)
    m = wait_status(s, r.headers["media-id"])
    assert m["status"] == "failed" and m["error"]["code"] == "corrupt", m
    assert "upload it again" in m["error"]["message"]
    assert original(s, "a1", r.headers["media-id"]) == cut  # the original stays what was sent
    (headers, body), = receiver.wait(1)
    assert verify(headers, body)["event"] == "media.failed"
    metrics = __import__("requests").get(s.http + "/metrics").text
    assert 'mediaedge_photos_refused_total{reason="corrupt"} 1' in metrics
    assert 'mediaedge_jobs_total{kind="photo",outcome="failed"} 1' in metrics


def test_kill_9_with_jobs_queued_every_media_ends_ready_once(make_server, receiver, tmp_path):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_JOBS_WORKERS="1")
    c = Client(s)
    ids = []
    for i in range(4):
        _, r = c.upload(photo(tmp_path, f"p{i}.jpg", "3000x2000"))
        ids.append(r.headers["media-id"])
    s.proc.send_signal(signal.SIGKILL)  # one worker: most jobs are still queued or running
    s.proc.wait(timeout=10)
    pending = list((s.dir / "var" / "storage" / "jobs").glob("*.json"))
    assert pending, "every job finished before the kill: the test proves nothing"
    s.log.close()
    s.start()
    for media_id in ids:
        assert wait_status(s, media_id, ("ready",), timeout=60)["status"] == "ready"
    events = [verify(h, b) for h, b in receiver.wait(len(ids))]
    assert {e["media"]["id"] for e in events} == set(ids)
    assert not list((s.dir / "var" / "storage" / "jobs").glob("*.json"))


def test_an_unanswered_webhook_is_retried_also_after_a_restart(make_server, receiver, tmp_path):
    receiver.status = 503
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_WEBHOOKS_RETRY_AFTER="200ms")
    _, r = Client(s).upload(photo(tmp_path))
    media_id = r.headers["media-id"]
    receiver.wait(2)  # the first try and the first retry, both refused
    s.stop()  # kill -9 while the delivery waits for its next try
    stored = s.dir / "var" / "storage" / "webhooks" / f"{media_id}-ready.json"
    assert stored.exists()
    refused = len(receiver.deliveries)
    assert refused >= 2
    receiver.status = 204
    s.log.close()
    s.start()
    deliveries = receiver.wait(refused + 1)
    assert len(deliveries) == refused + 1, "the stored delivery was not sent after the restart"
    ids = {h["Mediaedge-Delivery"] for h, _ in deliveries}
    assert ids == {f"{media_id}-ready"}  # one idempotency id for every try
    for _ in range(100):
        if not stored.exists():
            break
        time.sleep(0.05)
    assert not stored.exists()
    time.sleep(0.5)
    assert len(receiver.deliveries) == refused + 1  # acknowledged: never sent again


def test_the_reconciler_requeues_a_media_whose_job_was_lost(make_server, receiver, tmp_path):
    s = server_with_hooks(make_server, receiver)
    _, r = Client(s).upload(photo(tmp_path))
    media_id = r.headers["media-id"]
    wait_status(s, media_id)
    s.stop()
    # back to uploaded long ago, and no job: as if the queue and the job document were lost
    storage = s.dir / "var" / "storage"
    m = json.loads((storage / "media" / f"{media_id}.json").read_text())
    m.update(status="uploaded", created_at=int(time.time()) - 3600)
    for k in ("variants", "processed_at", "processing_at"):
        m.pop(k, None)
    (storage / "media" / f"{media_id}.json").write_text(json.dumps(m))
    s.start()
    assert wait_status(s, media_id, ("ready",))["variants"]["thumb.jpg"]["width"] == 320


def test_a_damaged_video_fails_in_its_lane(make_server, receiver):
    s = server_with_hooks(make_server, receiver)
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(5000)
    _, r = Client(s).upload(mp4)
    media_id = r.headers["media-id"]
    m = wait_status(s, media_id, ("failed",))
    assert (m["kind"], m["original"]["content_type"]) == ("video", "video/mp4")
    assert m["error"] == {"code": "corrupt",
                          "message": "The video is damaged or cut short; upload it again from the phone."}
    metrics = __import__("requests").get(s.http + "/metrics").text
    assert 'mediaedge_jobs_total{kind="video",outcome="failed"} 1' in metrics
    assert 'mediaedge_videos_refused_total{reason="corrupt"} 1' in metrics
    body = verify(*receiver.wait(1)[0])
    assert body["event"] == "media.failed" and body["media"]["id"] == media_id
    # the job goes after the manifest shows the failure: give it the moment it takes
    job = s.dir / "var" / "storage" / "jobs" / f"{media_id}.json"
    deadline = time.time() + 30
    while job.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not job.exists()
