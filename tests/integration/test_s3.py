"""Storage on S3 (OpenStack Swift's s3api on loopback, swift_s3.py): what is S3's own beyond the
upload and origin tests that run on both backends: small PATCHes merged into 5 MiB parts with
each byte read back at most once, nothing of an upload on local disk, the multipart upload
aborted with the upload, a photo processed from S3 to S3 and served, the metrics, the
refusals at start, an instance killed between S3's acknowledgement and the state's saving, and
virtual-hosted addressing."""
import json
import os
import re
import subprocess
import time

import pytest
import requests

import swift_s3
from conftest import run
from test_uploads import Client

MIB = 1 << 20


@pytest.fixture
def storage_backend():
    return "s3"


def metric(server, name):
    text = requests.get(server.http + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total, text


def local_files(server):
    """Files under the data directory, but the server's own (TLS, CloudFront key)."""
    root = server.dir / "var"
    return [p for p in root.rglob("*") if p.is_file() and "cdn" not in p.parts] if root.exists() else []


# 12 MiB in CI; the 100 MiB in the long suite (bench/s3 prints the same figure)
SMALL_PATCH_UPLOAD = (100 if os.environ.get("ME_LONG") else 12) * MIB


def test_small_patches_become_5_mib_parts_each_byte_read_back_at_most_once(make_server):
    s = make_server().start()
    data = b"\xff\xd8\xff\xe0" + os.urandom(SMALL_PATCH_UPLOAD - 4)
    c = Client(s)
    url = c.url(c.create(len(data)))
    before, _ = metric(s, "mediaedge_upload_bytes_read_back_total")
    off = 0
    while off < len(data):
        r = c.patch(url, off, data[off:off + 256 * 1024])
        assert r.status_code == 204, r.text
        off = int(r.headers["upload-offset"])
        # acknowledged means in S3: the pieces and parts are there, not on this machine
        assert local_files(s) == [], local_files(s)
        if off < len(data) and off % (5 * MIB) < 256 * 1024:
            pieces = s.storage.keys("uploads/")
            assert all(k.endswith(".info") for k in pieces), pieces  # just merged into a part
    media_id = r.headers["media-id"]
    assert s.storage.read(f"originals/a1/{media_id}") == data
    read_back, text = metric(s, "mediaedge_upload_bytes_read_back_total")
    read_back -= before
    print(f"{len(data) >> 20} MiB in 256 KiB PATCHes: {read_back / MIB:.2f} MiB of pieces read back")
    assert 0 < read_back <= len(data)
    # hashed as it came: the original is not downloaded again to hash it at completion
    assert metric(s, "mediaedge_upload_hash_bytes_read_back_total")[0] == 0
    got, _ = metric(s, 'mediaedge_s3_bytes_total{op="get",direction="in"}')
    assert got <= read_back + 64 * 1024, (got, read_back)  # pieces, states and the first bytes
    # every part but the last is at least 5 MiB: S3 would have refused the completion otherwise
    parts = len(data) // (5 * MIB + 256 * 1024) + 1
    assert f'mediaedge_s3_requests_total{{op="upload_part",status="200"}}' in text
    uploaded, _ = metric(s, 'mediaedge_s3_requests_total{op="upload_part",status="200"}')
    assert parts <= uploaded <= parts + 1
    # nothing of the upload left but its state
    assert [k for k in s.storage.keys("uploads/") if not k.endswith(".info")] == []
    assert s.storage.multipart_uploads() == []


def test_termination_aborts_the_multipart_upload(make_server):
    s = make_server().start()
    c = Client(s)
    url = c.url(c.create(20 * MIB))
    data = b"\xff\xd8\xff\xe0" + os.urandom(6 * MIB)
    assert c.patch(url, 0, data).status_code == 204  # one part, and a piece
    assert len(s.storage.multipart_uploads()) == 1
    assert c.patch(url, len(data), b"x" * 1000).status_code == 204
    assert s.storage.keys("uploads/") != []
    assert requests.delete(url, headers=c.h()).status_code == 204
    assert s.storage.multipart_uploads() == []
    assert s.storage.keys() == []


def test_another_instance_resumes_an_upload(make_server):
    """Stateless: a second server on the same bucket answers HEAD and takes the next PATCH."""
    a = make_server().start()
    c = Client(a)
    data = b"\xff\xd8\xff\xe0" + os.urandom(7 * MIB)
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:3 * MIB]).status_code == 204
    b = make_server(env={k: a.env[k] for k in a.env if k.startswith(("MEDIAEDGE_S3_", "MEDIAEDGE_TOKENS_"))}).start()
    b.storage = a.storage
    c_b = Client(b)
    c_b.token = c.token
    url_b = b.http + url[len(a.http):]
    h = c_b.head(url_b)
    assert h.status_code == 200 and h.headers["upload-offset"] == str(3 * MIB)
    r = c_b.patch(url_b, 3 * MIB, data[3 * MIB:])
    assert r.status_code == 204, r.text
    assert a.storage.read(f"originals/a1/{r.headers['media-id']}") == data
    # b saw only the last bytes: it reads the original back to hash it, and hashes it right
    assert metric(b, "mediaedge_upload_hash_bytes_read_back_total")[0] == len(data)
    m = json.loads(a.storage.read(f"media/{r.headers['media-id']}.json"))
    assert m["original"]["sha256"] == __import__("hashlib").sha256(data).hexdigest()


def photo(tmp_path):
    path = tmp_path / "p.jpg"
    subprocess.run(["convert", "-size", "1600x1200", "gradient:red-blue", str(path)], check=True)
    return path.read_bytes()


def manifest_when_done(s, media_id):
    """the media's manifest once its job ended (ready or failed), or as it is after 60 s"""
    deadline, m = time.time() + 60, None
    while time.time() < deadline:
        m = json.loads(s.storage.read(f"media/{media_id}.json"))
        if m["status"] in ("ready", "failed"):
            break
        time.sleep(0.1)
    return m


def test_a_photo_is_processed_from_s3_to_s3_and_served(make_server, tmp_path):
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "all"}).start()
    data = photo(tmp_path)
    c = Client(s)
    _, r = c.upload(data)
    media_id = r.headers["media-id"]
    m = manifest_when_done(s, media_id)
    assert m["status"] == "ready", m
    for v in m["variants"].values():
        assert len(s.storage.read(v["key"])) == v["bytes"] > 0
    assert s.storage.keys("jobs/") == [] or time.sleep(1) or s.storage.keys("jobs/") == []
    # the media API's signed URL reaches the variant through the origin, read from S3
    view = s.token("--scope", "view", "--user", "u1", "--album", "a1")
    api = requests.get(f"{s.http}/v1/media/{media_id}", headers={"Authorization": f"Bearer {view}"}).json()
    url = api["variants"]["thumb.jpg"]["url"]
    got = requests.get(url)
    assert got.status_code == 200 and got.content == s.storage.read(m["variants"]["thumb.jpg"]["key"])
    part = requests.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == got.content[10:20]
    _, text = metric(s, "mediaedge_s3_requests_total")
    for op in ("put", "get", "head", "create_multipart", "upload_part", "complete_multipart", "list"):
        assert re.search(rf'mediaedge_s3_requests_total{{op="{op}",status="2\d\d"}} [1-9]', text), op
    assert 'mediaedge_s3_request_duration_seconds_count{op="get"}' in text
    assert local_files(s) == []


def test_start_refuses_an_unreachable_or_missing_bucket(make_server):
    s = make_server()
    env = {k: v for k, v in s.env.items() if k.startswith(("MEDIAEDGE_", "AWS_"))}
    p = run("serve", env={**env, "MEDIAEDGE_S3_BUCKET": "no-such-bucket-here"}, cwd=s.dir, timeout=30)
    assert p.returncode != 0 and "s3.bucket: no-such-bucket-here answers 404 (no such bucket)" in p.stderr, p.stderr
    p = run("serve", env={**env, "AWS_SECRET_ACCESS_KEY": "wrong"}, cwd=s.dir, timeout=30)
    assert p.returncode != 0 and "access denied" in p.stderr, p.stderr
    assert "wrong" not in p.stderr
    p = run("serve", env={**env, "MEDIAEDGE_S3_ENDPOINT": "http://127.0.0.1:1", "MEDIAEDGE_S3_MAX_ATTEMPTS": "2"},
            cwd=s.dir, timeout=30)
    assert p.returncode != 0 and "s3.endpoint: cannot reach the bucket" in p.stderr, p.stderr
    p = run("check-config", env={**env, "MEDIAEDGE_S3_BUCKET": ""}, cwd=s.dir)
    assert p.returncode == 2 and "s3.bucket is required with storage.backend s3" in p.stderr
    p = run("check-config", env={**env, "MEDIAEDGE_S3_ADDRESSING": "sideways"}, cwd=s.dir)
    assert p.returncode == 2 and "MEDIAEDGE_S3_ADDRESSING" in p.stderr


def test_concatenation_copies_partials_inside_s3(make_server):
    """A final of partials: runs of 5 MiB or more are copied by S3 (ranged UploadPartCopy), only
    the small partial and what tops it up to a part are read back through the server."""
    from test_concat import final, partial
    s = make_server().start()
    c = Client(s)
    pieces = [b"\xff\xd8\xff\xe0" + os.urandom(6 * MIB - 4), os.urandom(100 * 1024), os.urandom(12 * MIB)]
    urls = [partial(c, p, chunk=4 * MIB) for p in pieces]
    got_before, _ = metric(s, 'mediaedge_s3_bytes_total{op="get",direction="in"}')
    r = final(c, urls, timeout=120)
    assert r.status_code == 201, r.text
    whole = b"".join(pieces)
    assert s.storage.read(f"originals/a1/{r.headers['media-id']}") == whole
    copies, _ = metric(s, 'mediaedge_s3_requests_total{op="upload_part_copy",status="200"}')
    assert copies == 2  # the first partial whole, and the third's last 7.1 MiB
    read, _ = metric(s, 'mediaedge_s3_bytes_total{op="get",direction="in"}')
    # read back: the 100 KiB partial, 4.9 MiB of the third to make a 5 MiB part, and the final's
    # SHA-256 and first bytes at completion (the whole file, as for any upload)
    assert read - got_before <= 5 * MIB + len(whole) + 64 * 1024, (read - got_before) / MIB
    assert s.storage.multipart_uploads() == []


def test_a_large_patch_becomes_parts_uploaded_at_once(make_server):
    """A 16 MiB PATCH is two parts of 8 MiB (awscli's size: each part costs S3 a request),
    put to S3 in parallel (a tus client sends one PATCH at a time); the original is the bytes
    in order."""
    s = make_server().start()
    c = Client(s)
    data = b"\xff\xd8\xff\xe0" + os.urandom(17 * MIB - 4)
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:16 * MIB]).status_code == 204
    assert metric(s, 'mediaedge_s3_requests_total{op="upload_part",status="200"}')[0] == 2
    r = c.patch(url, 16 * MIB, data[16 * MIB:])
    assert r.status_code == 204
    assert metric(s, 'mediaedge_s3_requests_total{op="upload_part",status="200"}')[0] == 3
    assert s.storage.read(f"originals/a1/{r.headers['media-id']}") == data


@pytest.mark.parametrize("storage_backend", swift_s3.BACKENDS)
def test_an_instance_killed_before_saving_the_state_loses_nothing(make_server):
    """An instance takes a PATCH, S3 acknowledges its part, and it dies (kill -9) before saving
    the upload's state document: the document left is the one from before that PATCH (put back
    here through S3 itself, which is exactly what such a crash leaves). Another instance's HEAD
    counts the bytes S3 holds (a part and a piece past the document's offset), refuses the old
    offset, and the upload resumed there completes byte-identical, its SHA-256 too (read back:
    the running hash died with the first instance)."""
    import hashlib
    a = make_server().start()
    c = Client(a)
    data = b"\xff\xd8\xff\xe0" + os.urandom(17 * MIB - 4)
    url = c.url(c.create(len(data)))
    upload_id = url.rsplit("/", 1)[1]
    assert c.patch(url, 0, data[:6 * MIB]).status_code == 204
    info = f"uploads/{upload_id}.info"
    before = a.storage.read(info)
    assert c.patch(url, 6 * MIB, data[6 * MIB:11 * MIB]).status_code == 204  # a 5 MiB part
    end = 11 * MIB + 300 * 1024
    assert c.patch(url, 11 * MIB, data[11 * MIB:end]).status_code == 204  # a piece on S3
    a.storage.write(info, before)  # the state of before those two PATCHes
    assert json.loads(a.storage.read(info))["offset"] == 6 * MIB
    a.signal(__import__("signal").SIGKILL)
    a.wait()

    # the same bucket (or, on file, the same directory)
    same = ("MEDIAEDGE_S3_", "MEDIAEDGE_TOKENS_", "MEDIAEDGE_STORAGE_")
    b = make_server(env={k: a.env[k] for k in a.env if k.startswith(same)}).start()
    b.storage = a.storage
    cb = Client(b)
    cb.token = c.token
    url_b = b.http + url[len(a.http):]
    h = cb.head(url_b)
    assert h.status_code == 200 and h.headers["upload-offset"] == str(end), h.headers
    assert cb.patch(url_b, 6 * MIB, data[6 * MIB:11 * MIB]).status_code == 409
    r = cb.patch(url_b, end, data[end:])
    assert r.status_code == 204, r.text
    media_id = r.headers["media-id"]
    assert a.storage.read(f"originals/a1/{media_id}") == data
    m = json.loads(a.storage.read(f"media/{media_id}.json"))
    assert m["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert metric(b, "mediaedge_upload_hash_bytes_read_back_total")[0] == len(data)
    assert [k for k in a.storage.keys("uploads/") if not k.endswith(".info")] == []


def test_virtual_hosted_addressing_end_to_end(make_server, swift_session, tmp_path):
    """s3.addressing virtual against Swift (storage_domain localhost): the bucket in the host
    (<bucket>.localhost, which libcurl resolves to loopback itself), never in the path, for
    every request an upload, its processing and the origin make; signed right, since Swift
    checks each signature."""
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "all"})
    port = s.env["MEDIAEDGE_S3_ENDPOINT"].rsplit(":", 1)[1]
    s.env.update({"MEDIAEDGE_S3_ADDRESSING": "virtual", "MEDIAEDGE_S3_ENDPOINT": f"http://localhost:{port}"})
    bucket, swift = s.env["MEDIAEDGE_S3_BUCKET"], swift_session.swift
    seen = len(swift.access_log())
    s.start()
    c = Client(s)
    data = photo(tmp_path) + os.urandom(6 * MIB)  # trailing bytes after the JPEG: two parts
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:5 * MIB + 1000]).status_code == 204
    assert c.patch(url, 5 * MIB + 1000, data[5 * MIB + 1000:5 * MIB + 2000]).status_code == 204  # a piece
    assert c.head(url).headers["upload-offset"] == str(5 * MIB + 2000)  # ListParts, and the listing
    r = c.patch(url, 5 * MIB + 2000, data[5 * MIB + 2000:])
    assert r.status_code == 204, r.text
    media_id = r.headers["media-id"]
    assert s.storage.read(f"originals/a1/{media_id}") == data
    m = manifest_when_done(s, media_id)
    assert m["status"] == "ready", m
    view = s.token("--scope", "view", "--user", "u1", "--album", "a1")
    api = requests.get(f"{s.http}/v1/media/{media_id}", headers={"Authorization": f"Bearer {view}"}).json()
    got = requests.get(api["variants"]["thumb.jpg"]["url"])
    assert got.status_code == 200 and got.content == s.storage.read(m["variants"]["thumb.jpg"]["key"])
    _, text = metric(s, "mediaedge_s3_requests_total")
    for op in ("put", "get", "head", "create_multipart", "upload_part", "list_parts", "complete_multipart", "list"):
        assert re.search(rf'mediaedge_s3_requests_total{{op="{op}",status="2\d\d"}} [1-9]', text), op
    # none refused (a signature or a bucket Swift did not recognise: 400, 403) or failed (5xx);
    # a 404 is a lookup of a key not there yet
    assert not re.search(r'mediaedge_s3_requests_total{op="[a-z_]+",status="(40[0-3]|5\d\d)"}', text), text
    # Swift's access log of the requests as clients sent them: the server's have no bucket in
    # the path (the test's own botocore client, path-style, does)
    time.sleep(0.5)  # the log comes over UDP
    lines = [line for line in swift.access_log()[seen:] if " 127.0.0.1 127.0.0.1 " in line and "Botocore" not in line]
    paths = [line.split(" ")[5] for line in lines]
    assert any(p.startswith("/uploads/") for p in paths), lines[:5]
    assert any(p.startswith("/originals/a1/") for p in paths), paths
    assert not any(p.startswith(f"/{bucket}") for p in paths), paths


def test_a_part_after_a_gap_is_not_counted(make_server):
    """A PATCH whose parts went to S3 at once, the first failing and the second taken (put
    here through S3 itself, past the state's next part): the offset does not count the second
    (what it holds is not known to follow the bytes before it), the next PATCH's parts go past
    it, and the original is the client's bytes only."""
    s = make_server().start()
    c = Client(s)
    data = b"\xff\xd8\xff\xe0" + os.urandom(12 * MIB - 4)
    url = c.url(c.create(len(data)))
    upload_id = url.rsplit("/", 1)[1]
    assert c.patch(url, 0, data[:6 * MIB]).status_code == 204
    info = json.loads(s.storage.read(f"uploads/{upload_id}.info"))
    key = f"originals/a1/{info['media_id']}"
    stray = os.urandom(5 * MIB)
    s.storage.client.upload_part(Bucket=s.storage.bucket, Key=key, UploadId=info["multipart"],
                                 PartNumber=info["next_part"] + 1, Body=stray)
    assert c.head(url).headers["upload-offset"] == str(6 * MIB)
    r = c.patch(url, 6 * MIB, data[6 * MIB:])
    assert r.status_code == 204, r.text
    assert s.storage.read(key) == data
