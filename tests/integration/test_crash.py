"""The crash matrix: the server is killed (kill -9 from outside, or MEDIAEDGE_FAILPOINT where
an outside kill cannot land: between two writes of one request or job) during a PATCH, a
completion, a photo job, a video job, a webhook delivery and a deletion, then started again
on the same storage. Each media must reach `ready` exactly once (one manifest, its variants
all there and decodable, the same result as a run without the crash), or be wholly gone for
a deletion; each webhook must arrive at least once, every copy with the same idempotency id.
File backend, local queue."""
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

from test_processing import Receiver, photo, verify, wait_status, SECRET
from test_uploads import Client, original

pytestmark = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")
# neighbours of a point the normal run covers, kept to make check-long (the wall time of check)
LONG = pytest.mark.skipif(os.environ.get("ME_LONG") != "1", reason="a neighbour of a case run always: ME_LONG=1")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.shutdown()


def hooked(make_server, receiver, failpoint=None, **env):
    """A server that processes and sends webhooks; armed with failpoint ("name[:n]") if given."""
    env = {"MEDIAEDGE_SERVER_ROLE": "all", "MEDIAEDGE_WEBHOOKS_URL": receiver.url,
           "MEDIAEDGE_WEBHOOKS_SECRET": SECRET, "MEDIAEDGE_WEBHOOKS_RETRY_AFTER": "200ms", **env}
    if failpoint is not None:
        env["MEDIAEDGE_FAILPOINT"] = failpoint
    return make_server(env=env).start()


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
    root = s.dir / "var" / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and media_id in str(p)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def decoded_sizes(paths):
    """Each image's (width, height), decoded by ImageMagick (one process for all)."""
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
    assert original(s, album, media_id) == data
    root = s.dir / "var" / "storage"
    stored = sorted(p.name for p in (root / "variants" / album / media_id).iterdir())
    assert stored == sorted(m["variants"]), "variants in storage that the manifest does not name, or missing"
    images = [v for v in m["variants"].values() if v["key"].endswith((".jpg", ".webp"))]
    for v in m["variants"].values():
        assert (root / v["key"]).stat().st_size == v["bytes"] > 0
    assert decoded_sizes(root / v["key"] for v in images) == [(v["width"], v["height"]) for v in images]
    assert not (root / "jobs" / f"{media_id}.json").exists() or wait_gone(root / "jobs" / f"{media_id}.json")
    ready = [verify(h, b) for h, b in deliveries_of(receiver, f"{media_id}-ready", 1)]
    assert {e["event"] for e in ready} == {"media.ready"}
    assert all(e["media"]["variants"] == ready[0]["media"]["variants"] for e in ready), "one event, two results"
    return m


def wait_gone(path, timeout=10):
    deadline = time.time() + timeout
    while path.exists() and time.time() < deadline:
        time.sleep(0.05)
    return not path.exists()


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
    """What a tus client does after losing its connection: HEAD, then PATCH from there."""
    r = c.head(url)
    assert r.status_code == 200, r.text
    off = int(r.headers["upload-offset"])
    while off < len(data):
        r = c.patch(url, off, data[off:off + chunk])
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
    return r


def new_upload(c, data):
    return c.url(c.create(len(data), metadata="filename " + base64.b64encode(b"kid.jpg").decode()))


def test_kill_9_mid_body_keeps_what_was_acknowledged(make_server, receiver, picture):
    s = hooked(make_server, receiver)
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


@pytest.mark.parametrize("failpoint,offset_after", [("upload.part_stored:2", 1), ("upload.offset_saved:2", 2)])
def test_kill_9_after_a_patch_is_stored_before_the_answer(make_server, receiver, picture, failpoint, offset_after):
    s = hooked(make_server, receiver, failpoint)
    data = picture
    chunk = len(data) // 3 + 1
    c = Client(s)
    url = new_upload(c, data)
    assert c.patch(url, 0, data[:chunk]).status_code == 204
    with pytest.raises(requests.ConnectionError):
        c.patch(url, chunk, data[chunk:2 * chunk])
    died_at(s, failpoint)
    restart(s)
    # stored but unanswered bytes: counted only once the offset that counts them is saved
    assert int(c.head(url).headers["upload-offset"]) == offset_after * chunk
    r = resume(c, url, data, chunk)
    assert_ready_once(s, receiver, r.headers["media-id"], data)


@pytest.mark.parametrize("failpoint", ["upload.original_stored", pytest.param("upload.manifest_stored", marks=LONG)])
def test_kill_9_during_completion(make_server, receiver, picture, failpoint):
    s = hooked(make_server, receiver, failpoint)
    data = picture
    c = Client(s)
    url = new_upload(c, data)
    with pytest.raises(requests.ConnectionError):
        c.patch(url, 0, data)
    died_at(s, failpoint)
    restart(s)
    r = c.head(url)  # the client asks where it stands: the completion is finished then
    assert r.status_code == 200 and int(r.headers["upload-offset"]) == len(data), r.text
    media_id = r.headers["media-id"]
    assert_ready_once(s, receiver, media_id, data)
    assert c.head(url).headers["media-id"] == media_id  # asked again: the same media, not a second one
    assert len(list((s.dir / "var" / "storage" / "originals" / "a1").iterdir())) == 1


@pytest.mark.parametrize("failpoint", ["photo.decoded", pytest.param("photo.variant_stored:3", marks=LONG),
                                       "jobs.processed", "jobs.ready_stored"])
def test_kill_9_during_a_photo_job(make_server, receiver, picture, failpoint):
    s = hooked(make_server, receiver, failpoint)
    data = picture
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, failpoint)
    restart(s)
    assert_ready_once(s, receiver, media_id, data)


def test_kill_9_during_a_video_job(make_server, receiver, tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs Debian's ffmpeg")
    src = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=30:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)],
                   check=True, timeout=60)
    data = src.read_bytes()
    s = hooked(make_server, receiver, "jobs.processed")
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, "jobs.processed", timeout=120)
    restart(s)
    m = assert_ready_once(s, receiver, media_id, data)
    assert m["kind"] == "video"
    for v in m["variants"].values():
        if v["key"].endswith(".mp4"):
            out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                  "stream=nb_read_frames", "-of", "csv=p=0", str(s.dir / "var" / "storage" / v["key"])],
                                 capture_output=True, text=True, check=True)
            assert int(out.stdout.strip()) == 30


def test_kill_9_after_a_webhook_arrived_before_it_was_recorded(make_server, receiver, picture):
    s = hooked(make_server, receiver, "webhook.delivered")
    data = picture
    _, r = Client(s).upload(data)
    media_id = r.headers["media-id"]
    died_at(s, "webhook.delivered")
    assert len(deliveries_of(receiver, f"{media_id}-ready", 1)) == 1
    restart(s)
    assert len(deliveries_of(receiver, f"{media_id}-ready", 2)) == 2  # sent again, with the same id
    assert wait_gone(s.dir / "var" / "storage" / "webhooks" / f"{media_id}-ready.json")
    assert_ready_once(s, receiver, media_id, data)


@pytest.mark.parametrize("client_retries", [pytest.param(True, marks=LONG), False])
def test_kill_9_during_a_deletion_then_it_is_wholly_gone(make_server, receiver, picture, client_retries):
    s = hooked(make_server, receiver, "deletion.object_removed:3")
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
    assert not (s.dir / "var" / "storage" / "uploads" / f"{upload_id}.info").exists()
    assert c.head(url).status_code == 404
    assert {verify(h, b)["event"] for h, b in deliveries_of(receiver, f"{media_id}-deleted", 1)} == {"media.deleted"}
