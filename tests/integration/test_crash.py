"""The crash matrix: the server is killed (kill -9 from outside, or MEDIAEDGE_FAILPOINT where
an outside kill cannot land: between two writes of one request or job) during a PATCH, a
completion, a photo job, a video job, a webhook delivery and a deletion, then started again
on the same storage. Each media must reach `ready` exactly once (one manifest, its variants
all there and decodable, the same result as a run without the crash), or be wholly gone for
a deletion; each webhook must arrive at least once, every copy with the same idempotency id.
File backend with the local queue; with ME_LONG=1 the main cases also on S3 (Swift) with the
Redis queue and locks (skipped with ME_S3=0 or without redis-server)."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

import swift_s3
from test_processing import Receiver, photo, verify, SECRET
from test_uploads import Client

pytestmark = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")
# in make check-long only: neighbours of a point the normal run covers, and the S3 + Redis stack
LONG = pytest.mark.skipif(os.environ.get("ME_LONG") != "1", reason="check-long only (ME_LONG=1)")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.shutdown()


# where a case runs: "file" (file backend, local queue), and under ME_LONG=1 also "s3+redis"
# (Swift's S3, the Redis queue and locks: 90 s more, mostly waiting for what the dead process
# held in Redis to expire)
BOTH = ["file", pytest.param("s3+redis", marks=[LONG, pytest.mark.skipif(
    "s3" not in swift_s3.BACKENDS or shutil.which("redis-server") is None, reason="needs Swift (ME_S3) and Redis")])]


@pytest.fixture
def stack():
    return "file"


@pytest.fixture
def storage_backend(stack):
    return "s3" if stack == "s3+redis" else "file"


@pytest.fixture
def hooked(make_server, receiver, stack, request):
    """Starts a server that processes and sends webhooks, armed with failpoint ("name[:n]") if given."""
    stack_env = {"MEDIAEDGE_WEBHOOKS_URL": receiver.url, "MEDIAEDGE_WEBHOOKS_SECRET": SECRET,
                 "MEDIAEDGE_WEBHOOKS_RETRY_AFTER": "200ms"}
    if stack == "s3+redis":  # production there: webhooks only over https, which Receiver does not speak
        redis = request.getfixturevalue("redis_server")
        # what a dead process held (upload locks, queue entries, the reconciler's turn) is
        # freed by expiry: short ones, to keep the test short
        stack_env = {"MEDIAEDGE_QUEUE_BACKEND": "redis", "MEDIAEDGE_REDIS_URL": redis.url,
                     "MEDIAEDGE_REDIS_LOCK_TTL": "2s", "MEDIAEDGE_QUEUE_CLAIM_AFTER": "2s",
                     "MEDIAEDGE_JOBS_RECONCILE_EVERY": "1s"}

    def start(failpoint=None, **env):
        env = {"MEDIAEDGE_SERVER_ROLE": "all", **stack_env, **env}
        if failpoint is not None:
            env["MEDIAEDGE_FAILPOINT"] = failpoint
        return make_server(env=env).start()
    return start


def died_at(s, failpoint, timeout=60):
    """Waits for the server to kill itself at failpoint; fails the test when it did not."""
    assert s.proc.wait(timeout=timeout) == -signal.SIGKILL, s.log_text()[-2000:]
    name = failpoint.split(":")[0]
    assert f"failpoint {name} fired" in s.log_text(), "killed, but not at the failpoint"


def restart(s):
    """Starts the server again on the same storage, disarmed."""
    s.env.pop("MEDIAEDGE_FAILPOINT", None)
    s.log.close()
    if s.proc.stdout:
        s.proc.stdout.close()
    return s.start()


def storage_keys(s, media_id):
    return sorted(k for k in s.storage.keys() if media_id in k)


def manifest(s, media_id):
    key = f"media/{media_id}.json"
    return json.loads(s.storage.read(key)) if s.storage.exists(key) else None


def wait_status(s, media_id, statuses=("ready", "failed"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = manifest(s, media_id)
        if m and m["status"] in statuses:
            return m
        time.sleep(0.05)
    raise AssertionError(f"media {media_id}: {manifest(s, media_id)}")


def decoded_sizes(s, keys):
    """Each stored image's (width, height), decoded by ImageMagick (one process for all)."""
    d = s.dir / "decoded"
    d.mkdir(exist_ok=True)
    paths = []
    for i, key in enumerate(keys):
        paths.append(d / f"{i}.{key.rsplit('.', 1)[1]}")
        paths[-1].write_bytes(s.storage.read(key))
    out = subprocess.run(["identify", "-format", "%w %h\n", *map(str, paths)], capture_output=True, text=True,
                         check=True)
    return [tuple(int(x) for x in line.split()) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """One photo for the whole module (the variants are what is checked, not the decoder)."""
    return photo(tmp_path_factory.mktemp("photo"), size="1200x900")


def assert_ready_once(s, receiver, media_id, data, album="a1"):
    """One manifest, ready; its variants all stored, decodable, of its sizes, and nothing else
    under its variant keys; the original byte for byte; media.ready delivered, with one id."""
    m = wait_status(s, media_id, ("ready",), timeout=60)
    assert s.storage.read(f"originals/{album}/{media_id}") == data
    prefix = f"variants/{album}/{media_id}/"
    stored = sorted(k[len(prefix):] for k in s.storage.keys(prefix))
    assert stored == sorted(m["variants"]), "variants in storage that the manifest does not name, or missing"
    images = [v for v in m["variants"].values() if v["key"].endswith((".jpg", ".webp"))]
    for v in m["variants"].values():
        assert len(s.storage.read(v["key"])) == v["bytes"] > 0
    assert decoded_sizes(s, [v["key"] for v in images]) == [(v["width"], v["height"]) for v in images]
    assert wait_gone(s, f"jobs/{media_id}.json")
    if "MEDIAEDGE_WEBHOOKS_URL" not in s.env:
        return m
    ready = [verify(h, b) for h, b in deliveries_of(receiver, f"{media_id}-ready", 1)]
    assert {e["event"] for e in ready} == {"media.ready"}
    assert all(e["media"]["variants"] == ready[0]["media"]["variants"] for e in ready), "one event, two results"
    return m


def wait_gone(s, key, timeout=30):
    deadline = time.time() + timeout
    while s.storage.exists(key) and time.time() < deadline:
        time.sleep(0.05)
    return not s.storage.exists(key)


def deliveries_of(receiver, event_id, at_least, timeout=30):
    """The deliveries of one event (at least at_least of them), each checked to carry its id."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = [(h, b) for h, b in list(receiver.deliveries) if json.loads(b)["id"] == event_id]
        if len(got) >= at_least:
            break
        time.sleep(0.05)
    assert len(got) >= at_least, f"{event_id}: {len(got)} deliveries"
    assert {h["Mediaedge-Delivery"] for h, _ in got} == {event_id}
    return got


def resume(c, url, data, chunk):
    """What a tus client does after losing its connection: HEAD, then PATCH from there, again
    while the upload is locked (423: with Redis, the dead process's lock until it expires)."""
    r = c.head(url)
    assert r.status_code == 200, r.text
    off = int(r.headers["upload-offset"])
    deadline = time.time() + 30
    while off < len(data):
        r = c.patch(url, off, data[off:off + chunk])
        if r.status_code == 423 and time.time() < deadline:
            time.sleep(0.2)
            continue
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
    return r


def head_until_complete(c, url, length):
    """HEAD until the upload's completion is finished (it names its media): a HEAD finishes
    it, once no other process holds the upload's lock (with Redis, the dead one's expires);
    while another holds it (the sweep finishing it too) the answer is 423: come back."""
    deadline = time.time() + 30
    while True:
        r = c.head(url)
        assert r.status_code == 423 or (r.status_code == 200 and int(r.headers["upload-offset"]) == length), r.text
        if "media-id" in r.headers or time.time() > deadline:
            return r
        time.sleep(0.2)


def new_upload(c, data):
    return c.url(c.create(len(data), metadata="filename " + base64.b64encode(b"kid.jpg").decode()))


def test_kill_9_mid_body_keeps_what_was_acknowledged(hooked, receiver, picture):
    s = hooked()
    data = picture
    chunk = len(data) // 3 + 1
    c = Client(s)
    url = new_upload(c, data)
    assert c.patch(url, 0, data[:chunk]).status_code == 204
    # the second PATCH: headers and half its body, then the server dies with it in flight
    path = url[len(s.http):]
    head = (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {c.token}\r\n"
            f"Upload-Offset: {chunk}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {chunk}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", s.http_port)) as sock:
        sock.sendall(head + data[chunk:chunk + chunk // 2])
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(timeout=10)
    restart(s)
    assert int(c.head(url).headers["upload-offset"]) == chunk  # the half body is not counted
    r = resume(c, url, data, chunk)
    assert_ready_once(s, receiver, r.headers["media-id"], data)


@pytest.mark.parametrize("stack", BOTH)
@pytest.mark.parametrize("failpoint", ["upload.part_stored:2", "upload.offset_saved:2"])
def test_kill_9_after_a_patch_is_stored_before_the_answer(hooked, receiver, picture, failpoint):
    s = hooked(failpoint)
    data = picture
    chunk = len(data) // 3 + 1
    c = Client(s)
    url = new_upload(c, data)
    assert c.patch(url, 0, data[:chunk]).status_code == 204
    with pytest.raises(requests.ConnectionError):
        c.patch(url, chunk, data[chunk:2 * chunk])
    died_at(s, failpoint)
    restart(s)
    # stored but unanswered bytes count, whether or not the state saying so was saved: the
    # offset is what storage holds
    assert int(c.head(url).headers["upload-offset"]) == 2 * chunk
    r = resume(c, url, data, chunk)
    assert_ready_once(s, receiver, r.headers["media-id"], data)


def test_every_byte_stored_and_the_client_gone_the_sweep_completes_it(hooked, receiver, picture):
    """The PATCH with the last bytes dies once they are stored, before its state is saved, and
    its client never comes back (no HEAD would finish it): at its expiry the sweep completes
    the upload instead of discarding it, and the photo is made."""
    s = hooked("upload.part_stored", MEDIAEDGE_UPLOADS_EXPIRE_AFTER="10s", MEDIAEDGE_UPLOADS_SWEEP_EVERY="1s")
    data = picture
    c = Client(s)
    url = new_upload(c, data)
    with pytest.raises(requests.ConnectionError):
        c.patch(url, 0, data)
    died_at(s, "upload.part_stored")
    info = json.loads(s.storage.read(f"uploads/{url.rsplit('/', 1)[1]}.info"))
    assert info["state"] == "open" and info["offset"] == 0  # what a sweep without the check would discard
    restart(s)
    assert_ready_once(s, receiver, info["media_id"], data)
    assert "completed by the sweep" in s.log_text()


@pytest.mark.parametrize("stack", BOTH)
@pytest.mark.parametrize("failpoint", ["upload.original_stored", pytest.param("upload.manifest_stored", marks=LONG)])
def test_kill_9_during_completion(hooked, receiver, picture, failpoint):
    s = hooked(failpoint)
    data = picture
    c = Client(s)
    url = new_upload(c, data)
    with pytest.raises(requests.ConnectionError):
        c.patch(url, 0, data)
    died_at(s, failpoint)
    restart(s)
    r = head_until_complete(c, url, len(data))  # the client asks where it stands: that finishes it
    media_id = r.headers["media-id"]
    assert_ready_once(s, receiver, media_id, data)
    assert c.head(url).headers["media-id"] == media_id  # asked again: the same media, not a second one
    assert len(s.storage.keys("originals/a1/")) == 1


@pytest.mark.parametrize("stack", BOTH)
@pytest.mark.parametrize("failpoint", ["photo.decoded", pytest.param("photo.variant_stored:3", marks=LONG),
                                       "jobs.processed", "jobs.ready_stored"])
def test_kill_9_during_a_photo_job(hooked, receiver, picture, failpoint):
    s = hooked(failpoint)
    data = picture
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, failpoint)
    restart(s)
    assert_ready_once(s, receiver, media_id, data)


def test_kill_9_during_a_video_job(hooked, receiver, tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian's ffmpeg")
    src = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=30:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
                   check=True, timeout=60)
    data = src.read_bytes()
    s = hooked("jobs.processed")
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, "jobs.processed", timeout=120)
    restart(s)
    m = assert_ready_once(s, receiver, media_id, data)
    assert m["kind"] == "video"
    for v in m["variants"].values():
        if v["key"].endswith(".mp4"):
            (tmp_path / "r.mp4").write_bytes(s.storage.read(v["key"]))
            out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                  "stream=nb_read_frames", "-of", "csv=p=0", str(tmp_path / "r.mp4")],
                                 capture_output=True, text=True, check=True)
            assert int(out.stdout.strip()) == 30


def test_kill_9_after_a_webhook_arrived_before_it_was_recorded(hooked, receiver, picture):
    s = hooked("webhook.delivered")
    data = picture
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, "webhook.delivered")
    assert len(deliveries_of(receiver, f"{media_id}-ready", 1)) == 1
    restart(s)
    assert len(deliveries_of(receiver, f"{media_id}-ready", 2)) == 2  # sent again, with the same id
    assert wait_gone(s, f"webhooks/{media_id}-ready.json")
    assert_ready_once(s, receiver, media_id, data)


@pytest.mark.parametrize("stack", BOTH)
@pytest.mark.parametrize("client_retries", [pytest.param(True, marks=LONG), False])
def test_kill_9_during_a_deletion_then_it_is_wholly_gone(hooked, receiver, picture, client_retries):
    s = hooked("deletion.object_removed:3")
    data = picture
    c = Client(s)
    url, r = c.upload(data)
    media_id = r.headers["media-id"]
    wait_status(s, media_id, ("ready",))
    auth = {"Authorization": "Bearer " + c.token}
    with pytest.raises(requests.ConnectionError):
        requests.delete(f"{s.http}/v1/media/{media_id}", headers=auth)
    died_at(s, "deletion.object_removed:3")
    left = storage_keys(s, media_id)
    assert any(k.startswith("variants/") for k in left), "nothing left to finish: the test proves nothing"
    restart(s)
    view = {"Authorization": "Bearer " + s.token("--scope", "view", "--user", "u1", "--album", "a1")}
    assert requests.get(f"{s.http}/v1/media/{media_id}", headers=view).status_code == 404
    if client_retries:  # the client never got its answer: it asks again
        assert requests.delete(f"{s.http}/v1/media/{media_id}", headers=auth).status_code == 204
    # else the reconciler, which looks at start, finishes it
    tomb = [f"tombstones/{media_id}.json"]
    deadline = time.time() + 10
    while [k for k in storage_keys(s, media_id) if not k.startswith("webhooks/")] != tomb and time.time() < deadline:
        time.sleep(0.05)
    assert [k for k in storage_keys(s, media_id) if not k.startswith("webhooks/")] == tomb
    assert requests.get(f"{s.http}/v1/media/{media_id}", headers=view).status_code == 404
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    assert not s.storage.exists(f"uploads/{upload_id}.info")
    assert c.head(url).status_code == 404
    if "MEDIAEDGE_WEBHOOKS_URL" in s.env:
        assert {verify(h, b)["event"] for h, b in deliveries_of(receiver, f"{media_id}-deleted", 1)} == {"media.deleted"}
