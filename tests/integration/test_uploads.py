"""tus 1.0 at /v1/uploads, driven with requests (HTTP/1.1) and curl: the protocol, every error,
and the stored original, byte for byte; on both storage backends (file, and S3 on Swift)."""
import base64
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import zlib

import pytest
import requests

import swift_s3

TUS = {"Tus-Resumable": "1.0.0"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@pytest.fixture(params=swift_s3.BACKENDS)
def storage_backend(request):
    return request.param


def jpeg(size):
    return JPEG + os.urandom(size - len(JPEG))


class Client:
    def __init__(self, server, user="u1", album="a1", **token_args):
        self.s = server
        args = ["--scope", "upload", "--user", user, "--album", album]
        for k, v in token_args.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.token = server.token(*args)
        self.album = album

    def h(self, **extra):
        return {**TUS, "Authorization": "Bearer " + self.token, **extra}

    def create(self, length=None, metadata=None, body=None, **headers):
        h = self.h(**headers)
        if length is not None:
            h["Upload-Length"] = str(length)
        else:
            h["Upload-Defer-Length"] = "1"
        if metadata is not None:
            h["Upload-Metadata"] = metadata
        if body is not None:
            h["Content-Type"] = "application/offset+octet-stream"
        return requests.post(self.s.http + "/v1/uploads", headers=h, data=body)

    def url(self, r):
        assert r.status_code == 201, r.text
        loc = r.headers["location"]
        assert loc.startswith("/v1/uploads/")
        return self.s.http + loc

    def patch(self, url, offset, body, **headers):
        h = self.h(**{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}, **headers)
        return requests.patch(url, headers=h, data=body)

    def head(self, url):
        return requests.head(url, headers=self.h())

    def upload(self, data, chunk=1 << 20):
        url = self.url(self.create(len(data), metadata="filename " + base64.b64encode(b"kid.jpg").decode()))
        off, r = 0, None
        while off < len(data):
            r = self.patch(url, off, data[off:off + chunk])
            assert r.status_code == 204, r.text
            off = int(r.headers["upload-offset"])
        return url, r


def original(server, album, media_id):
    return server.storage.read(f"originals/{album}/{media_id}")


def manifest(server, media_id):
    return json.loads(server.storage.read(f"media/{media_id}.json"))


def test_options_advertises_tus(server):
    r = requests.options(server.http + "/v1/uploads")
    assert r.status_code == 204
    assert r.headers["tus-resumable"] == "1.0.0"
    assert r.headers["tus-version"] == "1.0.0"
    ext = r.headers["tus-extension"].split(",")
    for e in ("creation", "creation-with-upload", "termination", "checksum", "expiration"):
        assert e in ext
    assert r.headers["tus-max-size"] == str(4 << 30)
    assert set(r.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256", "md5", "crc32"}


def test_upload_in_chunks_is_stored_byte_for_byte(server):
    c = Client(server, ref="order-7")
    data = jpeg(3 * (1 << 20) + 12345)
    url, last = c.upload(data)
    media_id = last.headers["media-id"]
    assert last.headers["tus-resumable"] == "1.0.0"
    assert original(server, "a1", media_id) == data
    m = manifest(server, media_id)
    assert m["status"] == "uploaded" and m["kind"] == "photo" and m["original"]["bytes"] == len(data)
    assert m["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["original"]["content_type"] == "image/jpeg" and m["owner"] == "u1" and m["album"] == "a1"
    assert m["original"]["key"] == f"originals/a1/{media_id}" and abs(m["created_at"] - time.time()) < 60
    assert m["ref"] == "order-7"
    assert server.storage.exists(f"jobs/{media_id}.json")
    h = c.head(url)
    assert h.status_code == 200
    assert h.headers["upload-offset"] == str(len(data)) == h.headers["upload-length"]
    assert h.headers["media-id"] == media_id
    assert h.headers["cache-control"] == "no-store"


def test_head_reports_progress_and_metadata(server):
    c = Client(server)
    meta = "filename a2lkLmpwZw==,filetype aW1hZ2UvanBlZw=="
    url = c.url(c.create(1000, metadata=meta))
    h = c.head(url)
    assert h.status_code == 200
    assert h.headers["upload-offset"] == "0" and h.headers["upload-length"] == "1000"
    assert "upload-expires" in h.headers
    assert c.patch(url, 0, JPEG + b"x" * 100).status_code == 204
    assert c.head(url).headers["upload-offset"] == str(len(JPEG) + 100)


def test_creation_with_upload(server):
    c = Client(server)
    data = jpeg(5000)
    r = c.create(len(data), body=data[:3000])
    url = c.url(r)
    assert r.headers["upload-offset"] == "3000"
    r = c.patch(url, 3000, data[3000:])
    assert r.status_code == 204
    assert original(server, "a1", r.headers["media-id"]) == data


def test_deferred_length(server):
    c = Client(server)
    data = jpeg(4000)
    url = c.url(c.create(None))
    assert c.head(url).headers["upload-defer-length"] == "1"
    assert c.patch(url, 0, data[:1000]).status_code == 204
    r = c.patch(url, 1000, data[1000:], **{"Upload-Length": str(len(data))})
    assert r.status_code == 204, r.text
    assert original(server, "a1", r.headers["media-id"]) == data


def test_wrong_offset_is_409(server):
    c = Client(server)
    url = c.url(c.create(100))
    r = c.patch(url, 10, b"x" * 10)
    assert r.status_code == 409
    assert r.json()["error"] == "offset_mismatch"
    assert c.head(url).headers["upload-offset"] == "0"


def test_checksums(server):
    c = Client(server)
    data = jpeg(2000)
    url = c.url(c.create(len(data)))
    bad = "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    r = c.patch(url, 0, data[:1000], **{"Upload-Checksum": bad})
    assert r.status_code == 460
    assert r.json()["error"] == "checksum_mismatch"
    assert c.head(url).headers["upload-offset"] == "0"
    good = "sha1 " + base64.b64encode(hashlib.sha1(data[:1000]).digest()).decode()
    assert c.patch(url, 0, data[:1000], **{"Upload-Checksum": good}).status_code == 204
    unknown = "sha3 " + base64.b64encode(b"x" * 32).decode()
    r = c.patch(url, 1000, data[1000:], **{"Upload-Checksum": unknown})
    assert r.status_code == 400
    crc = "crc32 " + base64.b64encode(zlib.crc32(data[1000:]).to_bytes(4, "big")).decode()
    assert c.patch(url, 1000, data[1000:], **{"Upload-Checksum": crc}).status_code == 204


def test_missing_or_other_tus_version_is_412(server):
    c = Client(server)
    for version in (None, "0.2.2"):
        h = c.h(**{"Upload-Length": "10"})
        if version is None:
            del h["Tus-Resumable"]
        else:
            h["Tus-Resumable"] = version
        r = requests.post(server.http + "/v1/uploads", headers=h)
        assert r.status_code == 412
        assert r.headers["tus-version"] == "1.0.0"


def test_upload_over_the_size_limits_is_413(make_server):
    s = make_server(env={"MEDIAEDGE_UPLOADS_MAX_SIZE": "10KiB"}).start()
    c = Client(s)
    r = c.create(10 * 1024 + 1)
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
    small = Client(s, max_bytes=500)
    assert small.create(501).status_code == 413
    url = small.url(small.create(None))  # deferred: the cap is checked on every PATCH
    r = small.patch(url, 0, jpeg(600))
    assert r.status_code == 413


def test_patch_beyond_length_is_413(server):
    c = Client(server)
    url = c.url(c.create(100))
    assert c.patch(url, 0, jpeg(101)).status_code == 413


def test_oversized_patch_refused_before_the_body(make_server):
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "64KiB"}).start()
    c = Client(s)
    url = c.url(c.create(1 << 20))
    r = c.patch(url, 0, jpeg(65 * 1024))
    assert r.status_code == 413
    assert r.json()["error"] == "too_large" and r.json()["limit"] == 64 * 1024
    assert c.head(url).headers["upload-offset"] == "0"


def test_expired_token_is_401(make_server):
    s = make_server(env={"MEDIAEDGE_TOKENS_LEEWAY": "0"}).start()
    c = Client(s, ttl=1)
    time.sleep(2.1)
    r = c.create(100)
    assert r.status_code == 401 and r.json()["error"] == "token_expired"


def test_view_token_cannot_upload(server):
    token = server.token("--scope", "view", "--user", "u1", "--album", "a1")
    r = requests.post(server.http + "/v1/uploads", headers={**TUS, "Authorization": "Bearer " + token,
                                                           "Upload-Length": "10"})
    assert r.status_code == 403


def test_another_users_upload_is_404(server):
    alice, bob = Client(server, user="alice"), Client(server, user="bob")
    url = alice.url(alice.create(100))
    assert bob.head(url).status_code == 404
    assert bob.patch(url, 0, JPEG).status_code == 404
    assert requests.delete(url, headers=bob.h()).status_code == 404
    assert alice.head(url).status_code == 200


@pytest.mark.parametrize("bad", ["x", "../../etc/passwd", "A" * 21, "A" * 23, "AAAAAAAAAAAAAAAAAAAA.!"])
def test_bad_ids_are_404(server, bad):
    c = Client(server)
    r = c.head(server.http + "/v1/uploads/" + bad)
    assert r.status_code == 404


def test_non_media_file_is_refused_at_completion(server):
    c = Client(server)
    data = b"%PDF-1.4 not a photo" + b"x" * 100
    url = c.url(c.create(len(data)))
    r = c.patch(url, 0, data)
    assert r.status_code == 415
    assert r.json()["error"] == "unsupported_media_type"
    assert c.head(url).status_code == 404
    assert server.storage.keys("originals/") == []


def test_termination(server):
    c = Client(server)
    url = c.url(c.create(1000))
    assert c.patch(url, 0, JPEG).status_code == 204
    r = requests.delete(url, headers=c.h())
    assert r.status_code == 204
    assert c.head(url).status_code == 404
    assert server.storage.keys() == []


def test_bad_metadata_is_400(server):
    c = Client(server)
    assert c.create(10, metadata="filename not base64!").status_code == 400
    assert c.create(10, metadata="a" * 5000).status_code == 400


def test_concurrent_patches_one_wins(server):
    c = Client(server)
    data = jpeg(8 << 20)
    url = c.url(c.create(len(data)))
    results = []

    def go():
        results.append(c.patch(url, 0, data[:8 << 20]).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(204) == 1, results
    assert all(code in (204, 409, 423) for code in results), results
    h = c.head(url)
    assert h.headers["upload-offset"] == str(len(data))
    assert original(server, "a1", h.headers["media-id"]) == data


def test_upload_over_h2_and_tls_with_curl(server, tmp_path):
    c = Client(server)
    data = jpeg(300000)
    f = tmp_path / "photo.jpg"
    f.write_bytes(data)
    url = c.url(c.create(len(data))).replace(server.http, server.https)
    out = subprocess.run(["curl", "-sk", "--http2", "-X", "PATCH", "-o", "/dev/null", "-D", "-",
                          "-w", "%{http_version} %{http_code}",
                          "-H", "Tus-Resumable: 1.0.0", "-H", "Authorization: Bearer " + c.token,
                          "-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream",
                          "--data-binary", "@" + str(f), url], capture_output=True, text=True)
    assert out.stdout.endswith("2 204"), out.stdout + out.stderr
    media_id = [l.split(": ")[1].strip() for l in out.stdout.splitlines() if l.lower().startswith("media-id")][0]
    assert original(server, "a1", media_id) == data
    # neither body was copied on its way to storage: HTTP/1.1's stays in place, HTTP/2's is taken over
    metrics = requests.get(server.http + "/metrics").text
    assert 'mediaedge_http_bodies_total{how="taken"} 1' in metrics
    assert 'how="copied"' not in metrics


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_literal(name, value):
    """A header field as an HPACK literal without indexing, new name, no Huffman coding."""
    def length(n):
        if n < 127:
            return bytes([n])
        out, n = [127], n - 127
        while n >= 128:
            out.append(n % 128 + 128)
            n //= 128
        return bytes(out + [n])
    return b"\x00" + length(len(name)) + name.encode() + length(len(value)) + value.encode()


def test_http2_reset_while_body_is_stored_loses_nothing(server):
    """A PATCH over HTTP/2 whose stream the client resets right after its last byte: the worker
    still reads the (taken over) body, stores it whole, and the server stays up."""
    c = Client(server)
    data = jpeg(100000)
    url = c.url(c.create(len(data)))
    fields = [(":method", "PATCH"), (":scheme", "http"), (":path", url[len(server.http):]),
              (":authority", f"127.0.0.1:{server.http_port}"), ("tus-resumable", "1.0.0"),
              ("authorization", "Bearer " + c.token), ("upload-offset", "0"),
              ("content-type", "application/offset+octet-stream"), ("content-length", "60000")]
    body = data[:60000]  # within HTTP/2's initial flow-control window
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0)
    out += h2_frame(1, 0x4, 1, b"".join(hpack_literal(n, v) for n, v in fields))
    for i in range(0, len(body), 16384):
        out += h2_frame(0, 0x1 if i + 16384 >= len(body) else 0, 1, body[i:i + 16384])
    out += h2_frame(3, 0, 1, (8).to_bytes(4, "big"))  # RST_STREAM CANCEL
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        sock.sendall(out)
        deadline = time.time() + 10
        while c.head(url).headers["upload-offset"] != "60000":
            assert time.time() < deadline, "the reset PATCH's bytes were not stored"
            time.sleep(0.05)
    assert 'mediaedge_http_bodies_total{how="taken"} 1' in requests.get(server.http + "/metrics").text
    r = c.patch(url, 60000, data[60000:])
    assert r.status_code == 204, r.text
    assert original(server, "a1", r.headers["media-id"]) == data


@pytest.mark.parametrize("env", [{"MEDIAEDGE_HTTP_MIN_FREE_DISK": "1000000GiB"},
                                 {"MEDIAEDGE_HTTP_MAX_BODY_MEMORY": "64KiB"}])
def test_caps_answer_503_with_retry_after(make_server, env):
    s = make_server(env=env).start()
    c = Client(s)
    url = c.url(c.create(1 << 20))
    r = c.patch(url, 0, jpeg(100 * 1024))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"] == "busy"
    assert c.head(url).headers["upload-offset"] == "0"
    metrics = requests.get(s.http + "/metrics").text
    reason = "disk" if "FREE_DISK" in next(iter(env)) else "memory"
    assert f'mediaedge_http_bodies_refused_total{{reason="{reason}"}} 1' in metrics


@pytest.mark.parametrize("kill_after", [0.05, 0.3, 0.6])
def test_kill_9_mid_patch_loses_nothing_acknowledged(make_server, kill_after):
    """kill -9 while a PATCH is arriving or being stored: after a restart HEAD reports an offset
    at a PATCH boundary (what was acknowledged, or that PATCH whole), and the upload resumes
    from there to a byte-identical original."""
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "16MiB"}).start()
    c = Client(s)
    data = jpeg(12 << 20)
    url = c.url(c.create(len(data)))
    assert c.patch(url, 0, data[:1 << 20]).status_code == 204

    def slow_body():
        chunk = data[1 << 20: 9 << 20]
        for i in range(0, len(chunk), 256 << 10):
            yield chunk[i:i + (256 << 10)]
            time.sleep(0.01)

    def send():
        try:
            requests.patch(url, headers=c.h(**{"Upload-Offset": str(1 << 20),
                                               "Content-Type": "application/offset+octet-stream",
                                               "Content-Length": str(8 << 20)}), data=slow_body(), timeout=10)
        except requests.RequestException:
            pass

    t = threading.Thread(target=send)
    t.start()
    time.sleep(kill_after)
    s.proc.kill()
    s.proc.wait()
    t.join()
    s.stop()
    s.start()
    offset = int(c.head(url).headers["upload-offset"])
    assert offset in (1 << 20, 9 << 20), offset
    while offset < len(data):
        r = c.patch(url, offset, data[offset:offset + (4 << 20)])
        assert r.status_code == 204, r.text
        offset = int(r.headers["upload-offset"])
    assert original(s, "a1", r.headers["media-id"]) == data
