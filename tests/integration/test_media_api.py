"""The media API: GET /v1/media/<id> (facts and signed URLs, ETag and 304), the batch lookup of
an album page, the album's signed cookies, and deletion of a media or an album (the origin
answers 404 after, nothing stays in storage, the backend gets media.deleted), with requests."""
import json
import shutil
import time

import pytest
import requests

import cf_sign
from test_origin import ALBUM, MEDIA, base, put_media
from test_processing import Receiver, photo, verify, wait_status
from test_uploads import Client


def token(server, scope="view", user="u1", album=ALBUM):
    return {"Authorization": "Bearer " + server.token("--scope", scope, "--user", user, "--album", album)}


def stored(server):
    """Every key in the file backend's storage, but its own dot-files."""
    root = server.dir / "var" / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not
                  any(part.startswith(".") for part in p.relative_to(root).parts))


def test_a_media_with_signed_urls_etag_and_304(server):
    files = put_media(server, files={"thumb.jpg": ("image/jpeg", b"t" * 300), "thumb.webp": ("image/webp", b"w" * 200)})
    r = requests.get(f"{server.http}/v1/media/{MEDIA}", headers=token(server))
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["id"], m["album"], m["kind"], m["status"]) == (MEDIA, ALBUM, "photo", "ready")
    assert set(m["variants"]) == {"thumb.jpg", "thumb.webp"}
    for name, v in m["variants"].items():
        assert "key" not in v and v["bytes"] == len(files[name][1])
        assert v["url"].startswith(f"{base(server)}/m/{ALBUM}/{MEDIA}/{name}?Expires=")
        got = requests.get(v["url"], verify=False)
        assert got.status_code == 200 and got.content == files[name][1]
        assert got.headers["content-type"] == v["content_type"]
    assert "url" not in m["original"] and "owner" not in m and "ref" not in m  # originals are off by default
    assert m["urls_expire_at"] > time.time() + 3000 and m["urls_expire_at"] % 300 == 0
    assert r.headers["cache-control"] == "private, no-cache"
    again = requests.get(f"{server.http}/v1/media/{MEDIA}", headers={**token(server), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_who_may_see_it(server):
    put_media(server)
    url = f"{server.http}/v1/media/{MEDIA}"
    assert requests.get(url).status_code == 401
    assert requests.get(url, headers=token(server, album="album-8")).status_code == 404  # another album's: not found
    r = requests.get(url, headers=token(server, scope="upload"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert requests.get(url, headers=token(server, scope="admin")).status_code == 200
    assert requests.get(f"{server.http}/v1/media/no/such", headers=token(server)).status_code == 404
    assert requests.get(f"{server.http}/v1/media/NoSuchMediaIdxxxxxxxxx", headers=token(server)).status_code == 404
    assert requests.put(url, headers=token(server)).status_code == 405


def test_processing_shows_its_status_and_no_urls(server):
    put_media(server, status="processing")
    m = requests.get(f"{server.http}/v1/media/{MEDIA}", headers=token(server)).json()
    assert m["status"] == "processing" and m["variants"] == {} and "urls_expire_at" not in m


def test_an_album_page_in_one_request(server):
    ids = [f"Page{i:02d}xxxxxxxxxxxxxxxxx"[:22] for i in range(60)]
    for i in ids:
        put_media(server, media_id=i)
    put_media(server, media_id="ElsewhereMediaIdxxxxxx", album="album-8")
    url = f"{server.http}/v1/albums/{ALBUM}/media"
    q = ",".join(ids + ["ElsewhereMediaIdxxxxxx", "NoSuchMediaIdxxxxxxxxx", ids[0]])
    r = requests.get(url, params={"ids": q}, headers=token(server))  # requests writes the commas as %2C
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["id"] for m in body["media"]] == ids
    assert body["missing"] == ["ElsewhereMediaIdxxxxxx", "NoSuchMediaIdxxxxxxxxx"]
    assert all(m["variants"]["thumb.jpg"]["url"].startswith(base(server)) for m in body["media"])
    assert requests.get(url + "?ids=" + q, headers={**token(server), "If-None-Match": r.headers["etag"]}).status_code == 304
    for bad in ["", "?ids=", "?ids=a,,b", "?ids=a,", "?ids=a/b", "?x=1", "?ids=" + ",".join(f"i{n}" for n in range(101))]:
        r = requests.get(url + bad, headers=token(server))
        assert r.status_code == 400 and r.json()["error"] == "bad_request", bad
    assert requests.get(url + "?ids=a", headers=token(server, album="album-8")).status_code == 403


def test_album_cookies(server):
    put_media(server)
    r = requests.get(f"{server.http}/v1/albums/{ALBUM}/cookies", headers=token(server))
    assert r.status_code == 200, r.text
    assert r.json()["resource"] == f"{base(server)}/m/{ALBUM}/*"
    set_cookies = r.raw.headers.getlist("Set-Cookie")
    assert [c.split("=", 1)[0] for c in set_cookies] == ["CloudFront-Policy", "CloudFront-Signature",
                                                       "CloudFront-Key-Pair-Id"]
    for c in set_cookies:
        assert c.endswith(f"; Path=/m/{ALBUM}/; Secure; HttpOnly; SameSite=Lax") and "Expires" not in c
    jar = {c.split("=", 1)[0]: c.split("=", 1)[1].split(";")[0] for c in set_cookies}
    assert requests.get(f"{base(server)}/m/{ALBUM}/{MEDIA}/thumb.jpg", cookies=jar).status_code == 200
    assert requests.get(f"{server.http}/v1/albums/album-8/cookies", headers=token(server)).status_code == 403
    assert requests.get(f"{server.http}/v1/albums/{ALBUM}/cookies",
                        headers=token(server, scope="upload")).status_code == 403


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.shutdown()


@pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")
def test_deleting_a_processed_photo_leaves_nothing(make_server, receiver, tmp_path):
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "all", "MEDIAEDGE_WEBHOOKS_URL": receiver.url,
                         "MEDIAEDGE_WEBHOOKS_SECRET": "whsec-integration"}).start()
    upload_url, r = Client(s, user="u1", album=ALBUM, ref="order-1").upload(photo(tmp_path))
    media_id = r.headers["media-id"]
    upload_info = "uploads/" + upload_url.rstrip("/").rsplit("/", 1)[1] + ".info"
    wait_status(s, media_id)
    assert upload_info in stored(s)  # names the file and its owner: it must go with the media
    view = requests.get(f"{s.http}/v1/media/{media_id}", headers=token(s)).json()
    thumb = view["variants"]["thumb.jpg"]["url"]
    assert requests.get(thumb, verify=False).status_code == 200
    receiver.wait(1)  # media.ready
    assert requests.delete(f"{s.http}/v1/media/{media_id}", headers=token(s, user="u2")).status_code == 403
    assert requests.delete(f"{s.http}/v1/media/{media_id}", headers=token(s, album="album-8")).status_code == 404
    r = requests.delete(f"{s.http}/v1/media/{media_id}", headers=token(s, scope="upload", user="u1"))
    assert r.status_code == 204, r.text
    assert requests.get(thumb, verify=False).status_code == 404  # the origin, at once
    assert requests.get(f"{s.http}/v1/media/{media_id}", headers=token(s)).status_code == 404
    # original, variants, manifest, job: gone; the tombstone stays (and a delivery not yet acknowledged)
    assert [k for k in stored(s) if media_id in k and not k.startswith("webhooks/")] == [f"tombstones/{media_id}.json"]
    assert upload_info not in stored(s)
    headers, body = receiver.wait(2)[1]
    event = verify(headers, body)
    assert event["event"] == "media.deleted" and event["id"] == f"{media_id}-deleted"
    assert event["media"]["status"] == "deleted" and event["media"]["ref"] == "order-1"
    # again: already gone, still fine
    assert requests.delete(f"{s.http}/v1/media/{media_id}", headers=token(s, scope="upload")).status_code == 204


def test_deleting_an_album_is_for_the_backend(server):
    for i in range(3):
        put_media(server, media_id=f"AlbumMedia{i}xxxxxxxxxxx")
    put_media(server, media_id="KeptMediaIdxxxxxxxxxxx", album="album-8")
    url = f"{server.http}/v1/albums/{ALBUM}"
    thumb = requests.get(f"{server.http}/v1/media/AlbumMedia1xxxxxxxxxxx",
                         headers=token(server)).json()["variants"]["thumb.jpg"]["url"]
    assert requests.get(thumb).status_code == 200  # served once: the origin keeps it in memory
    assert requests.delete(url, headers=token(server)).status_code == 403
    assert requests.delete(url, headers=token(server, scope="admin", album="album-8")).status_code == 403
    r = requests.delete(url, headers=token(server, scope="admin"))
    assert r.status_code == 200 and r.json() == {"album": ALBUM, "deleted": 3}
    assert requests.get(thumb).status_code == 404  # the origin, at once
    left = stored(server)
    assert [k for k in left if ALBUM in k or "AlbumMedia" in k] == [f"tombstones/AlbumMedia{i}xxxxxxxxxxx.json"
                                                                     for i in range(3)], left
    assert "media/KeptMediaIdxxxxxxxxxxx.json" in left
    assert requests.get(f"{server.http}/v1/media/KeptMediaIdxxxxxxxxxxx", headers=token(server, album="album-8")).ok
    admin = token(server, scope="admin")
    assert requests.delete(f"{server.http}/v1/media/AlbumMedia0xxxxxxxxxxx", headers=admin).status_code == 204
    assert requests.delete(url, headers=admin).json()["deleted"] == 0
