"""The origin, GET|HEAD /m/<album>/<media-id>/<file>, standalone (no CDN configured): signed URLs
and cookies made by botocore's CloudFrontSigner with the server's development key, checked as
CloudFront would; Range with curl, conditional requests with requests, a video read by ffprobe,
and the memory of 20 clients streaming a 200 MB object at once. On both storage backends (file,
and S3 on Swift: the origin then reads in ranged GETs)."""
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import requests

import cf_sign
import swift_s3

ALBUM = "album-7"
MEDIA = "AbCdEfGhIjKlMnOpQrStUv"
LATER = int(time.time()) + 3600


@pytest.fixture(params=swift_s3.BACKENDS)
def storage_backend(request):
    return request.param


def put_media(server, media_id=MEDIA, album=ALBUM, files=None, status="ready"):
    """A media as a pipeline leaves it: manifest and objects, written into the server's storage."""
    files = files or {"thumb.jpg": ("image/jpeg", os.urandom(5000))}
    variants = {}
    for name, (ctype, data) in files.items():
        key = f"variants/{album}/{media_id}/{name}"
        server.storage.write(key, data)
        variants[name] = {"key": key, "width": 1, "height": 1, "bytes": len(data), "content_type": ctype}
    orig = f"originals/{album}/{media_id}"
    server.storage.write(orig, b"\xff\xd8\xff original")
    manifest = {"v": 1, "id": media_id, "album": album, "owner": "u1", "ref": "", "plan": "premium",
                "client": "app", "kind": "photo", "status": status, "created_at": 1,
                "original": {"key": orig, "bytes": 13, "sha256": "0" * 64, "content_type": "image/jpeg"},
                "variants": variants if status == "ready" else {}}
    server.storage.write(f"media/{media_id}.json", json.dumps(manifest).encode())
    return files


def base(server):
    """The server's own URL, what its signed URLs start with: its plain listener, since its TLS
    certificate is a self-signed one (no browser would show a picture from it)."""
    return server.http


def target(file="thumb.jpg", album=ALBUM, media_id=MEDIA):
    return f"/m/{album}/{media_id}/{file}"


def signed(server, file="thumb.jpg", expires=LATER, album=ALBUM, media_id=MEDIA, **kw):
    return cf_sign.url(cf_sign.dev_key(server), base(server) + target(file, album, media_id), expires, **kw)


def get(url, **kw):
    return requests.get(url, verify=False, **kw)


def test_a_signed_url_gets_the_bytes_with_their_headers(server):
    data = put_media(server)["thumb.jpg"][1]
    r = get(signed(server))
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["etag"].startswith('"') and r.headers["last-modified"].endswith("GMT")
    assert r.headers["cache-control"] == "private"  # standalone: no shared cache keeps family photos
    assert r.headers["accept-ranges"] == "bytes" and r.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in r.headers
    h = requests.head(signed(server), verify=False)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == str(len(data)) and h.headers["etag"] == r.headers["etag"]


def test_the_resource_is_the_cdn_base_whatever_address_the_request_came_to(server):
    put_media(server)
    url = signed(server)  # signed for http://127.0.0.1:<plain port>
    assert get(server.https + url[len(server.http):]).status_code == 200  # sent to the TLS port
    assert get(url.replace("127.0.0.1", "localhost")).status_code == 200  # another Host: still ours


def test_refusals_as_cloudfront_would(server):
    put_media(server, files={"thumb.jpg": ("image/jpeg", b"x" * 100), "small.jpg": ("image/jpeg", b"y" * 100)})
    url = signed(server)
    assert get(base(server) + target()).status_code == 403  # nothing signed
    r = get(url.replace("Signature=", "Signature=A"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert get(url.replace("Expires=", "Expires=9")).status_code == 403  # a longer life, unsigned
    assert get(url.replace("thumb.jpg", "small.jpg")).status_code == 403  # another file, same proof
    assert get(url + "&w=1").status_code == 403  # the query is part of the resource
    assert get(url.replace("Key-Pair-Id=DEV", "Key-Pair-Id=OTHER")).status_code == 403
    past = signed(server, expires=int(time.time()) - 1)
    r = get(past)
    assert r.status_code == 403 and "expired" in r.json()["message"]
    assert get(signed(server, not_before=int(time.time()) + 600)).status_code == 403
    # a key of our own making that the server does not hold
    other = server.dir / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(other)],
                   check=True, capture_output=True)
    assert get(cf_sign.url(str(other), base(server) + target(), LATER)).status_code == 403
    assert any(l.get("type") == "access" and l["route"] == "/m/{album}/{media}/{file}" and l["status"] == 403
               for l in server.log_lines())
    assert "Signature=" not in server.log_text()  # signatures never reach the log


def test_ip_conditions_and_a_spoofed_forwarded_for(server):
    put_media(server)
    assert get(signed(server, ip="127.0.0.0/8")).status_code == 200
    assert get(signed(server, ip="10.0.0.0/8")).status_code == 403
    # with no trusted proxy configured the header is the client's own words: ignored
    spoofed = get(signed(server, ip="10.0.0.0/8"), headers={"X-Forwarded-For": "10.1.2.3"})
    assert spoofed.status_code == 403


def test_album_cookies_open_the_album_and_nothing_else(server):
    put_media(server)
    put_media(server, media_id="OtherAlbumMediaIdxxxxx", album="album-8")
    jar = cf_sign.cookies(cf_sign.dev_key(server), base(server) + f"/m/{ALBUM}/*", LATER)
    assert get(base(server) + target(), cookies=jar).status_code == 200
    assert get(base(server) + target(album="album-8", media_id="OtherAlbumMediaIdxxxxx"), cookies=jar).status_code == 403
    jar["CloudFront-Policy"] = jar["CloudFront-Policy"][:-4] + "AAAA"
    assert get(base(server) + target(), cookies=jar).status_code == 403


def test_what_is_not_there_is_404(server):
    put_media(server, status="processing")
    assert get(signed(server)).status_code == 404  # not ready: no variant yet
    assert get(signed(server, file="original")).status_code == 404  # originals are off by default
    assert get(signed(server, media_id="NoSuchMediaIdxxxxxxxxx")).status_code == 404
    # the same media id under another album is not this resource
    put_media(server)
    assert get(signed(server, album="album-9")).status_code == 404
    for bad in ["/m/a/../thumb.jpg", "/m/a/b/c/d.jpg", "/m/a/b/x", "/m/%2e%2e/b/t.jpg"]:
        assert requests.get(server.http + bad).status_code == 404, bad
    assert requests.post(server.http + target()).status_code == 405


def test_ranges_with_curl(server):
    data = put_media(server, files={"thumb.jpg": ("image/jpeg", os.urandom(100000))})["thumb.jpg"][1]
    url = signed(server)

    def curl(*args):  # HTTP/2 (h2c) unless told
        h2 = [] if "--http1.1" in args else ["--http2-prior-knowledge"]
        p = subprocess.run(["curl", "-s", "-D", "-", "-o", "-", *h2, *args, url], capture_output=True, check=True)
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        return head.decode(), body

    head, body = curl("-r", "100-199")
    assert head.startswith("HTTP/2 206") and "content-range: bytes 100-199/100000" in head
    assert body == data[100:200]
    head, body = curl("-r", "-10")
    assert body == data[-10:] and "content-range: bytes 99990-99999/100000" in head
    head, body = curl("-r", "99000-")
    assert body == data[99000:]
    head, body = curl("--http1.1", "-r", "0-0")
    assert head.startswith("HTTP/1.1 206") and body == data[:1]
    head, body = curl("-r", "100000-")
    assert " 416" in head.splitlines()[0] and "content-range: bytes */100000" in head
    head, body = curl("-r", "0-1,5-6")  # several ranges: the whole file, as RFC 9110 allows
    assert head.startswith("HTTP/2 200") and body == data


def test_conditional_requests(server):
    data = put_media(server, files={"thumb.jpg": ("image/jpeg", os.urandom(3000))})["thumb.jpg"][1]
    url = signed(server)
    etag = get(url).headers["etag"]
    r = get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    r = get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[:10]
    r = get(url, headers={"Range": "bytes=0-9", "If-Range": '"changed"'})
    assert r.status_code == 200 and r.content == data
    lm = get(url).headers["last-modified"]
    assert get(url, headers={"Range": "bytes=0-9", "If-Range": lm}).status_code == 206


def answers(server):
    """mediaedge_origin_answers_total by where the bytes came from."""
    text = requests.get(f"{server.http}/metrics").text
    found = {}
    for line in text.splitlines():
        if line.startswith("mediaedge_origin_answers_total{"):
            found[line.split('from="')[1].split('"')[0]] = int(float(line.split()[-1]))
    return found


def test_small_objects_from_memory_and_a_change_seen_after_the_hot_ttl(make_server):
    s = make_server(env={"MEDIAEDGE_DELIVERY_HOT_TTL": "500ms"}).start()
    old = put_media(s, files={"thumb.jpg": ("image/jpeg", os.urandom(4000))})["thumb.jpg"][1]
    url = signed(s)
    assert get(url).content == old and answers(s).get("read") == 1
    r = get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == old[10:20]
    assert get(url).content == old and answers(s).get("hot") == 2
    # replaced behind the server's back (no pipeline does that; another instance's deletion
    # and a new object would look the same): seen once the ttl has run out, never mixed
    new = put_media(s, files={"thumb.jpg": ("image/jpeg", os.urandom(3000))})["thumb.jpg"][1]
    r = get(url)
    assert r.content in (old, new) and r.headers["content-length"] == str(len(r.content))
    time.sleep(0.6)
    r = get(url)
    assert r.content == new and r.headers["content-length"] == "3000"
    # gone from storage: 404 after the ttl, whatever memory held
    s.storage.delete(f"media/{MEDIA}.json")
    time.sleep(0.6)
    assert get(url).status_code == 404


def test_without_the_hot_cache_every_request_reads_storage(make_server):
    s = make_server(env={"MEDIAEDGE_DELIVERY_HOT_CACHE": "0"}).start()
    data = put_media(s)["thumb.jpg"][1]
    for _ in range(3):
        assert get(signed(s)).content == data
    assert answers(s) == {"streamed": 3}
    new = put_media(s, files={"thumb.jpg": ("image/jpeg", os.urandom(100))})["thumb.jpg"][1]
    assert get(signed(s)).content == new


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_ffprobe_reads_a_video_through_a_signed_url(server, tmp_path):
    mp4 = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(mp4)], check=True)
    put_media(server, files={"720p.mp4": ("video/mp4", mp4.read_bytes())})
    p = subprocess.run(["ffprobe", "-v", "error", "-tls_verify", "0", "-show_entries", "stream=codec_name,width",
                        "-of", "json", signed(server, file="720p.mp4")], capture_output=True, text=True, check=True)
    assert json.loads(p.stdout)["streams"][0] == {"codec_name": "h264", "width": 320}


def rss_kib(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# on S3 (4 GB read from Swift through the origin) only in the long suite
@pytest.mark.parametrize("storage_backend", ["file", "s3"] if os.environ.get("ME_LONG") else ["file"])
def test_twenty_clients_streaming_200_mb_keep_memory_small(make_server, storage_backend, tmp_path):
    s = make_server().start()
    size = 200 << 20
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:  # a 200 MB object, written in pieces
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    if s.backend == "file":
        put_media(s, files={"big.mp4": ("video/mp4", b"")})
        os.replace(big, s.dir / "var" / "storage" / "variants" / ALBUM / MEDIA / "big.mp4")
        big = s.dir / "var" / "storage" / "variants" / ALBUM / MEDIA / "big.mp4"
    else:
        put_media(s, files={"big.mp4": ("video/mp4", big.read_bytes())})
    want = hashlib.sha256(big.read_bytes()).hexdigest()
    url = cf_sign.url(cf_sign.dev_key(s), base(s) + target("big.mp4"), LATER)
    plain = url
    before = rss_kib(s.proc.pid)
    peak, stop = [before], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(s.proc.pid))
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    # half over HTTP/1.1, half over h2c, read at the pace of the client
    procs = [subprocess.Popen(["curl", "-s", *(["--http2-prior-knowledge"] if i % 2 else []), plain],
                              stdout=subprocess.PIPE) for i in range(20)]
    digests = []
    for p in procs:
        h = hashlib.sha256()
        while chunk := p.stdout.read(1 << 20):
            h.update(chunk)
        p.wait()
        digests.append(h.hexdigest())
    stop.set()
    grown_mib = (peak[0] - before) / 1024
    print(f"RSS before {before / 1024:.1f} MiB, peak {peak[0] / 1024:.1f} MiB: {grown_mib:.1f} MiB for 20 clients "
          f"({grown_mib / 20:.2f} MiB each)")
    assert digests == [want] * 20
    assert grown_mib < 20 * 3, f"{grown_mib:.0f} MiB for 20 clients"


@pytest.mark.parametrize("storage_backend", ["file"])  # on S3 the tests' servers are given a key
def test_a_worker_holds_no_cloudfront_key_and_serves_no_media(make_server):
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "worker"}).start()
    assert not (s.dir / "var" / "cdn").exists()  # no key made, none loaded
    assert requests.get(s.http + target()).status_code == 404
