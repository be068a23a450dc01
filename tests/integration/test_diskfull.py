"""Disk full: the file backend's root, and the directory libh2o spills large request bodies to
(server.data_dir/tmp), each on a small tmpfs made by the test (mounting needs root: skipped
otherwise). Uploads are refused with a stable code (507 storage_full, or 503 with Retry-After),
never a 500 and never a crash; every byte acknowledged before stays (HEAD offset unchanged,
the finished original byte for byte); and the server recovers by itself once there is room."""
import os
import shutil
import subprocess
import time

import pytest
import requests

from test_uploads import Client, jpeg


@pytest.fixture
def small_fs(tmp_path):
    """Makes tmpfs filesystems of a few MiB under tmp_path; unmounts them after the test."""
    mounts = []

    def make(name, size="20m"):
        d = tmp_path / name
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill (needs root): {r.stderr.strip()}")
        mounts.append(d)
        return d

    yield make
    for d in reversed(mounts):
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(d, leave=0):
    """Fills d's filesystem up to leave bytes free; returns the filler (delete it to make room)."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096):  # megabytes, then the last pages
            try:
                while os.write(fd, b"\0" * size) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, os.path.getsize(filler) - leave)
    return filler


def alive(s):
    assert s.proc.poll() is None, s.log_text()[-2000:]
    assert requests.get(s.http + "/healthz", timeout=5).status_code == 200


def test_a_full_storage_answers_507_keeps_every_acknowledged_byte_and_recovers(make_server, small_fs):
    root = small_fs("storage")
    s = make_server(env={"MEDIAEDGE_STORAGE_ROOT": str(root), "MEDIAEDGE_HTTP_MIN_FREE_DISK": "1MiB"}).start()
    c = Client(s)
    data, chunk = jpeg(12 << 20), 4 << 20
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:chunk]).status_code == 204
    filler = fill(root)
    for _ in range(2):  # refused again and again while full, never a 500
        r = c.patch(url, chunk, data[chunk:2 * chunk])
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "storage_full" and "Retry this request later" in r.json()["message"]
        assert int(r.headers["retry-after"]) > 0
        alive(s)
        assert int(c.head(url).headers["upload-offset"]) == chunk  # what was acknowledged stays
    r = c.create(len(data))  # a new upload needs room too
    assert r.status_code == 507 and r.json()["error"] == "storage_full", r.text
    filler.unlink()  # room again: no restart
    off = int(c.head(url).headers["upload-offset"])
    while off < len(data):
        r = c.patch(url, off, data[off:off + chunk])
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
    media_id = r.headers["media-id"]
    assert (root / "originals" / "a1" / media_id).read_bytes() == data
    assert not [l for l in s.log_lines() if l.get("type") == "access" and l.get("status", 0) >= 500
                and l.get("status") not in (503, 507)]


@pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")
def test_a_photo_job_that_finds_storage_full_waits_and_then_ends_ready(make_server, small_fs, tmp_path):
    root = small_fs("storage")
    env = {"MEDIAEDGE_STORAGE_ROOT": str(root), "MEDIAEDGE_HTTP_MIN_FREE_DISK": "1MiB",
           "MEDIAEDGE_JOBS_RETRY_AFTER": "100ms", "MEDIAEDGE_JOBS_MAX_ATTEMPTS": "2"}
    api = make_server(env=env).start()  # uploads only: the job waits in storage
    # noise: its large variants take more than the room left, its job document and thumbnails not
    subprocess.run(["convert", "-size", "640x480", "xc:gray", "+noise", "Random", str(tmp_path / "n.jpg")],
                   check=True)
    data = (tmp_path / "n.jpg").read_bytes()
    _, r = Client(api).upload(data)
    media_id = r.headers["media-id"]
    api.stop()
    # room for the manifest, the job's record and the small variants, not for the large ones
    filler = fill(root, leave=96 << 10)
    s = make_server(env={**env, "MEDIAEDGE_SERVER_ROLE": "all"}).start()  # the same storage root
    # more tries than jobs.max_attempts: counted, they would have failed the media
    deadline = time.time() + 60
    while time.time() < deadline and wait_status_at(root, media_id)["status"] != "failed" and \
            sum("Storage is full" in (l.get("msg") or "") for l in s.log_lines()) < 3:
        time.sleep(0.05)
    m = wait_status_at(root, media_id)
    assert m["status"] not in ("failed", "ready"), m
    assert sum("Storage is full" in (l.get("msg") or "") for l in s.log_lines()) >= 3, s.log_text()[-2000:]
    alive(s)
    filler.unlink()
    m = wait_status_at(root, media_id, ("ready",), timeout=30)
    assert m["status"] == "ready"


def wait_status_at(root, media_id, statuses=None, timeout=0):
    """The manifest of media_id under storage root, once its status is one of statuses (any
    status when None)."""
    import json
    deadline = time.time() + timeout
    while True:
        p = root / "media" / f"{media_id}.json"
        m = json.loads(p.read_text()) if p.exists() else None
        if m is not None and (statuses is None or m["status"] in statuses):
            return m
        if time.time() >= deadline:
            raise AssertionError(f"media {media_id}: {m}")
        time.sleep(0.05)


def test_a_full_spill_directory_drops_the_body_and_keeps_the_upload(make_server, small_fs):
    """libh2o 2.2.5 writes a body above http.body_spill_threshold to a file under
    data_dir/tmp, grown with posix_fallocate; when that fails it closes the connection
    before any handler runs (no response can be sent). The server must stay up, the upload
    keep its offset, and the same PATCH succeed once there is room."""
    var = small_fs("var")
    s = make_server(env={"MEDIAEDGE_SERVER_DATA_DIR": str(var), "MEDIAEDGE_HTTP_BODY_SPILL_THRESHOLD": "1MiB",
                         "MEDIAEDGE_HTTP_MIN_FREE_DISK": "1MiB"}).start()
    c = Client(s)
    data, chunk = jpeg(16 << 20), 8 << 20
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:chunk]).status_code == 204
    filler = fill(var, leave=2 << 20)  # above min_free_disk: admitted, but no room to spill 8 MiB
    try:
        r = c.patch(url, chunk, data[chunk:])
        status = r.status_code
        assert status in (204, 503, 507), r.text  # stored (the buffer fit after all), or refused
    except requests.ConnectionError:
        status = None  # dropped by libh2o before any handler
    alive(s)
    assert int(c.head(url).headers["upload-offset"]) == (len(data) if status == 204 else chunk)
    filler.unlink()
    if status != 204:
        r = c.patch(url, chunk, data[chunk:])
        assert r.status_code == 204, r.text
    assert s.storage.read(f"originals/a1/{r.headers['media-id']}") == data


def test_a_data_directory_below_min_free_disk_answers_503_before_it_fills(make_server, small_fs):
    var = small_fs("var")
    s = make_server(env={"MEDIAEDGE_SERVER_DATA_DIR": str(var), "MEDIAEDGE_HTTP_MIN_FREE_DISK": "8MiB"}).start()
    c = Client(s)
    data = jpeg(2 << 20)
    url = c.url(c.create(len(data)))
    filler = fill(var, leave=4 << 20)
    time.sleep(1.1)  # the free-space figure is looked at once a second
    r = c.patch(url, 0, data)
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
    assert int(c.head(url).headers["upload-offset"]) == 0
    filler.unlink()
    time.sleep(1.1)
    assert c.patch(url, 0, data).status_code == 204
