"""tus concatenation at /v1/uploads: partial uploads joined into a final one. Driven by
tus-js-client under Node with parallelUploads (what browsers send), and by requests for the
headers, every refusal, races and kill -9."""
import hashlib
import json
import threading
import time

import pytest
import requests

from test_tus_js import MiB, NODE, NODE_DIR, check_stored, head, make_jpeg, run_upload, storage, tus_server, \
    upload_token
from test_uploads import JPEG, Client, jpeg, manifest, original


def partial(c, data, complete=True, chunk=1 << 20):
    """A partial upload of c holding data (or only its first half); returns its absolute URL."""
    r = c.create(len(data), **{"Upload-Concat": "partial"})
    url = c.url(r)
    assert r.headers["upload-concat"] == "partial"
    sent = data if complete else data[:len(data) // 2]
    for off in range(0, len(sent), chunk):
        r = c.patch(url, off, sent[off:off + chunk])
        assert r.status_code == 204, r.text
        assert "media-id" not in r.headers
    return url


def final(c, urls, timeout=30, **headers):
    return requests.post(c.s.http + "/v1/uploads",
                         headers=c.h(**{"Upload-Concat": "final;" + " ".join(urls)}, **headers), timeout=timeout)


def path_of(url):
    return url[url.index("/v1/uploads/"):]


def upload_id(url):
    return url.rsplit("/", 1)[1]


def test_options_lists_concatenation(server):
    r = requests.options(server.http + "/v1/uploads")
    assert "concatenation" in r.headers["tus-extension"].split(",")


@pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir(),
                    reason="needs node and tus-js-client: npm ci --prefix tests/integration/node")
def test_tus_js_parallel_uploads_store_the_photo(make_server, tmp_path):
    """tus-js-client with parallelUploads: 3 (three partials in 1 MiB chunks, then the final):
    the original is the file byte for byte and the partials leave nothing of their bytes."""
    server = tus_server(make_server)
    size = 7 * MiB + 4321
    path = tmp_path / "birthday.jpg"
    sha = make_jpeg(path, size)
    token = upload_token(server, "u-7", "fam_7")

    res = run_upload(server, token, path, MiB, "--parallel", "3")

    media_id = check_stored(server, res, sha, size, "u-7", "fam_7")
    assert res["bytesSent"] == size and res["bytesAcked"] == size and res["retries"] == 0, json.dumps(res)
    r = head(res["url"], token)
    assert r.status_code == 200 and r.headers["Media-Id"] == media_id, dict(r.headers)
    assert r.headers["Upload-Offset"] == r.headers["Upload-Length"] == str(size)
    parts = r.headers["Upload-Concat"].removeprefix("final;").split(" ")
    assert len(parts) == 3 and all(p.startswith("/v1/uploads/") for p in parts), r.headers["Upload-Concat"]
    uploads = storage(server) / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == sorted(
        [upload_id(res["url"]) + ".info"] + [upload_id(p) + ".info" for p in parts])  # no bytes left
    m = json.loads((storage(server) / "media" / f"{media_id}.json").read_text())
    assert m["original"]["content_type"] == "image/jpeg"


def test_final_of_partials_in_order_with_headers(server):
    c = Client(server, ref="order-9")
    data = jpeg(300001)
    urls = [partial(c, data[:100000]), partial(c, data[100000:200000]), partial(c, data[200000:])]
    h = c.head(urls[0])
    assert h.status_code == 200 and h.headers["upload-concat"] == "partial"
    assert h.headers["upload-offset"] == h.headers["upload-length"] == "100000"
    assert "upload-expires" in h.headers and "media-id" not in h.headers

    # absolute URLs (what tus-js-client sends) and a path
    r = final(c, [urls[0], path_of(urls[1]), urls[2]], **{"Upload-Metadata": "filename Yi5qcGc="})
    assert r.status_code == 201, r.text
    media_id = r.headers["media-id"]
    assert original(server, "a1", media_id) == data
    m = manifest(server, media_id)
    assert m["original"]["sha256"] == hashlib.sha256(data).hexdigest() and m["original"]["bytes"] == len(data)
    assert m["ref"] == "order-9"
    assert (server.dir / "var" / "storage" / "jobs" / f"{media_id}.json").exists()
    furl = c.url(r)
    h = c.head(furl)
    assert h.status_code == 200, h.text
    assert h.headers["upload-concat"] == "final;" + " ".join(path_of(u) for u in urls)
    assert h.headers["upload-offset"] == h.headers["upload-length"] == str(len(data))
    assert h.headers["media-id"] == media_id
    for u in urls:  # their bytes went into the original
        assert not (server.dir / "var" / "storage" / "uploads" / upload_id(u)).exists()
        assert c.head(u).status_code == 200


def test_partials_are_joined_in_the_order_named(server):
    c = Client(server)
    head_, tail = JPEG + b"a" * 1000, b"b" * 2000
    urls = [partial(c, tail), partial(c, head_)]
    r = final(c, [urls[1], urls[0]])
    assert r.status_code == 201, r.text
    assert original(server, "a1", r.headers["media-id"]) == head_ + tail


def test_partial_never_becomes_media(server):
    c = Client(server)
    url = partial(c, b"%PDF-1.4 " + b"x" * 1000)  # not a photo: no matter for a partial
    h = c.head(url)
    assert h.status_code == 200 and h.headers["upload-offset"] == "1009" and "media-id" not in h.headers
    store = server.dir / "var" / "storage"
    for d in ("originals", "media", "jobs"):
        assert not (store / d).exists() or not any((store / d).rglob("*")), d


def test_final_naming_another_users_partial_is_404(server):
    alice, bob = Client(server, user="alice"), Client(server, user="bob")
    mine, theirs = partial(alice, jpeg(1000)), partial(bob, b"x" * 1000)
    r = final(alice, [mine, theirs])
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert bob.head(theirs).status_code == 200  # untouched
    assert final(alice, [mine]).status_code == 201  # and mine still free


def test_reused_partial_is_410_but_the_same_request_again_gets_the_same_final(server):
    c = Client(server)
    a, b, spare = partial(c, jpeg(1000)), partial(c, b"x" * 1000), partial(c, jpeg(500))
    first = final(c, [a, b])
    assert first.status_code == 201, first.text
    for urls in ([b], [a], [spare, b], [b, a]):
        r = final(c, urls)
        assert r.status_code == 410 and r.json()["error"] == "partial_used", (urls, r.text)
    again = final(c, [a, b])  # a retry after a lost answer
    assert again.status_code == 201
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["media-id"] == first.headers["media-id"]
    assert len(list((server.dir / "var" / "storage" / "media").iterdir())) == 1
    assert requests.delete(a, headers=c.h()).status_code == 409  # used
    assert requests.delete(spare, headers=c.h()).status_code == 204  # complete, but unused


def test_unfinished_partial_is_409(server):
    c = Client(server)
    done, unfinished = partial(c, jpeg(1000)), partial(c, b"x" * 1000, complete=False)
    r = final(c, [done, unfinished])
    assert r.status_code == 409 and r.json()["error"] == "partial_incomplete"
    assert len(list((server.dir / "var" / "storage" / "uploads").glob("*.info"))) == 2  # no final recorded
    assert c.patch(unfinished, 500, b"x" * 500).status_code == 204
    assert final(c, [done, unfinished]).status_code == 201


def test_patch_on_a_final_is_403(server):
    c = Client(server)
    r = final(c, [partial(c, jpeg(1000))])
    url = c.url(r)
    for offset in (0, 1000):
        r = c.patch(url, offset, b"more")
        assert r.status_code == 403 and r.json()["error"] == "final_upload", r.text
    assert c.head(url).headers["upload-offset"] == "1000"


@pytest.mark.parametrize("concat,extra", [
    ("final;", {}),
    ("final;   ", {}),
    ("final;/v1/uploads/short", {}),
    ("final;/v2/uploads/AAAAAAAAAAAAAAAAAAAAAA", {}),
    ("final;http:/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", {}),
    ("final;" + " ".join(f"/v1/uploads/AAAAAAAAAAAAAAAAAAAA{i:02d}" for i in range(17)), {}),
    ("final;/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA /v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", {}),
    ("final;/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", {"Upload-Length": "10"}),
    ("partial-ish", {"Upload-Length": "10"}),
    ("Final;/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", {}),
])
def test_malformed_upload_concat_is_400(server, concat, extra):
    c = Client(server)
    r = requests.post(server.http + "/v1/uploads", headers=c.h(**{"Upload-Concat": concat}, **extra))
    assert r.status_code == 400 and r.json()["error"] == "invalid_concat", r.text
    assert "location" not in r.headers


def test_final_of_what_is_not_a_partial_of_this_album_is_400(server):
    c, elsewhere = Client(server), Client(server, album="a2")
    plain = c.url(c.create(100))
    other_album = partial(elsewhere, jpeg(100))
    for urls in ([partial(c, jpeg(100)), plain], [other_album]):
        r = final(c, urls)
        assert r.status_code == 400 and r.json()["error"] == "invalid_concat", r.text


def test_final_over_the_size_limits_is_413(make_server):
    s = make_server(env={"MEDIAEDGE_UPLOADS_MAX_SIZE": "3000"}).start()
    c, small = Client(s), Client(s, max_bytes=1500)
    urls = [partial(c, jpeg(1000)), partial(c, b"x" * 1000), partial(c, b"y" * 1000)]
    r = final(c, urls + [partial(c, b"z")])
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
    mine = [partial(small, jpeg(800)), partial(small, b"x" * 800)]
    assert final(small, mine).status_code == 413  # the token's max_bytes
    assert final(c, urls).status_code == 201  # at the limit, and nothing was used up before


def test_final_that_is_no_media_is_415_and_removed(server):
    c = Client(server)
    urls = [partial(c, b"%PDF-1.4 "), partial(c, b"x" * 100)]
    r = final(c, urls)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    for u in urls:
        assert c.head(u).status_code == 404
    left = [p for p in (server.dir / "var" / "storage").rglob("*") if p.is_file()]
    assert left == [], left


def test_finals_racing_for_a_partial_one_wins(server):
    c = Client(server)
    shared = partial(c, jpeg(2 << 20))
    others = [partial(c, b"x" * (1 << 20)) for _ in range(4)]
    results = []

    def go(urls):
        results.append(final(c, urls))

    threads = [threading.Thread(target=go, args=([shared, o],)) for o in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and all(code in (201, 410, 423) for code in codes), codes
    assert len(list((server.dir / "var" / "storage" / "media").iterdir())) == 1


def building(s):
    """What the storage of s says of the final being built: its state ("joining": its parts
    being written, "completing": its original being made), once every partial is marked
    used by it; else None."""
    docs = []
    for info in (s.dir / "var" / "storage" / "uploads").glob("*.info"):
        try:
            docs.append(json.loads(info.read_text()))
        except (OSError, ValueError):
            return None  # being replaced
    finals = [d for d in docs if d.get("kind") == "final"]
    marked = all(d.get("used_by") for d in docs if d.get("kind") == "partial")
    return finals[0]["state"] if len(finals) == 1 and marked else None


@pytest.mark.parametrize("when", ["joining", "completing"])
def test_kill_9_while_a_final_is_built_then_the_retry_finishes_it(make_server, when):
    """kill -9 while the final is being built (its parts being written, or its original being
    made): after a restart the client's retry of the same POST carries on with the same final,
    byte for byte, and no partial can be used again."""
    s = make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "4MiB"}).start()
    c = Client(s)
    data = jpeg(48 << 20)
    urls = [partial(c, data[i:i + (16 << 20)], chunk=4 << 20) for i in range(0, len(data), 16 << 20)]

    def send():
        try:
            final(c, urls, timeout=20)
        except requests.RequestException:
            pass

    t = threading.Thread(target=send)
    t.start()
    deadline = time.time() + 20
    while building(s) != when:
        assert time.time() < deadline and t.is_alive(), f"the final was never seen {when}"
    s.proc.kill()
    s.proc.wait()
    t.join()
    s.stop()
    s.start()
    for _ in range(50):  # 423 while the start's sweep of expired uploads holds a lock: retry, as clients do
        r = final(c, urls)
        if r.status_code != 423:
            break
        time.sleep(0.1)
    assert r.status_code == 201, r.text
    assert original(s, "a1", r.headers["media-id"]) == data
    assert len(list((s.dir / "var" / "storage" / "media").iterdir())) == 1
    assert "asked for again" in s.log_text()  # the same final, not a second one
    assert final(c, urls[:1]).status_code == 410
