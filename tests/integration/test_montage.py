"""One-second montages through the server: videos of different lengths, orientations and frame
rates, with and without sound, and a photo, made here by Debian's ffmpeg CLI and uploaded;
the film checked with ffprobe (duration, size, codecs, moov first, continuous sound, no
location) and by its pixels (capture order); the refusals (plan, scope, foreign and missing
media), idempotency, and a kill -9 mid-montage."""
import json
import shutil
import signal
import subprocess
import time

import pytest
import requests

from test_processing import receiver, server_with_hooks, verify, wait_status  # noqa: F401 (fixture)
from conftest import BIN
from test_uploads import Client

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("ffmpeg", "ffprobe", "exiftool")),
                                reason="needs Debian's ffmpeg and exiftool (./bootstrap check installs them)")


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True, timeout=120)


def probe(path, *extra):
    p = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *extra,
                        str(path)], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Capture order: portrait (Nov 1), photo (Nov 2), landscape with sound and a location
    (Nov 3), 24 fps with sound (Nov 5). Names say it; uploads go in another order."""
    d = tmp_path_factory.mktemp("montage")
    f = {}
    f["landscape"] = d / "landscape.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=4", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=44100:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata", "creation_time=2026-11-03T10:00:00Z", "-metadata", "location=+48.8584+002.2945/",
           "-shortest", f["landscape"])
    f["portrait"] = d / "portrait.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=240x320:rate=25:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-metadata", "creation_time=2026-11-01T09:00:00Z", f["portrait"])
    f["fps24"] = d / "fps24.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=24:duration=2", "-f", "lavfi", "-i",
           "sine=frequency=660:sample_rate=48000:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata", "creation_time=2026-11-05T18:00:00Z", "-shortest", f["fps24"])
    f["photo"] = d / "photo.jpg"
    ffmpeg("-f", "lavfi", "-i", "color=c=0x3060c0:size=640x480", "-frames:v", "1", f["photo"])
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-DateTimeOriginal=2026:11:02 12:00:00",
                    str(f["photo"])], check=True)
    return f


ORDER = ["portrait", "photo", "landscape", "fps24"]


def upload_all(s, inputs, album="a1", names=("landscape", "fps24", "photo", "portrait")):
    c = Client(s, album=album, plan="premium")
    ids = {}
    for name in names:
        _, r = c.upload(inputs[name].read_bytes())
        ids[name] = r.headers["media-id"]
    for name, media_id in ids.items():
        assert wait_status(s, media_id, timeout=60)["status"] == "ready", name
    return ids


def montage_token(s, plan="premium", album="a1", scope="montage"):
    return s.token("--scope", scope, "--user", "backend", "--album", album, "--plan", plan)


def post(s, token, body, album="a1", **headers):
    return requests.post(f"{s.http}/v1/albums/{album}/montages", json=body,
                         headers={"Authorization": "Bearer " + token, **headers})


def wait_montage(s, token, url, statuses=("ready", "failed"), timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(s.http + url, headers={"Authorization": "Bearer " + token})
        assert r.status_code == 200, r.text
        if r.json()["status"] in statuses:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"montage {url}: {r.json()}")


def body_of(ids, names=ORDER, **extra):
    return {"period": "2026-11", "media": [{"id": ids[n]} for n in names], **extra}


def frame_gray(path, at):
    """The frame at `at` seconds as 64x36 grey bytes."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1", "-vf",
                          "scale=64:36,format=gray", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    assert len(out) == 64 * 36
    return out


def test_a_montage_of_videos_and_a_photo_in_capture_order(make_server, receiver, inputs, tmp_path):
    s = server_with_hooks(make_server, receiver)
    ids = upload_all(s, inputs)
    token = montage_token(s)
    r = post(s, token, body_of(ids, names=["fps24", "photo", "landscape", "portrait"], caption="date"))
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    assert r.headers["location"] == f"/v1/albums/a1/montages/{mid}" and r.json()["status"] == "queued"
    m = wait_montage(s, token, r.headers["location"])
    assert m["status"] == "ready" and m["progress"] == 1 and m["clips"] == 4, m
    film = tmp_path / "film.mp4"
    got = requests.get(m["film"]["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    film.write_bytes(got.content)
    assert requests.get(m["poster"]["thumb.jpg"]["url"]).status_code == 200
    info = probe(film)
    v = [x for x in info["streams"] if x["codec_type"] == "video"][0]
    a = [x for x in info["streams"] if x["codec_type"] == "audio"][0]
    assert (v["codec_name"], v["width"], v["height"], v["r_frame_rate"]) == ("h264", 1280, 720, "30/1")
    assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("aac", "48000", 2)
    assert abs(float(info["format"]["duration"]) - 4) <= 0.1
    assert abs(float(v["duration"]) - 4) <= 0.1 and abs(float(a["duration"]) - 4) <= 0.1
    # moov before mdat (faststart), no location or device metadata anywhere
    data = film.read_bytes()
    assert 0 < data.index(b"moov") < data.index(b"mdat")
    for tag in (b"+48.8584", b"\xa9xyz", b"location", b"com.apple", b"Lavf", b"x264"):
        assert tag not in data, tag
    assert not info["format"].get("tags", {}).get("location")
    # sound continuous: packets back to back from 0 to the end
    pk = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_packets", "-of", "json",
                                    str(film)], capture_output=True, text=True, check=True).stdout)["packets"]
    ends = [(int(p["pts"]), int(p["pts"]) + int(p["duration"])) for p in pk]
    assert all(b[0] == a[1] for a, b in zip(ends, ends[1:])), "a gap in the sound"
    # capture order: the portrait clip (pillarboxed: black sides) first, then the photo
    # (a flat blue, fitted whole: 4:3 is covered), then the 4:3 landscape (covered: no bars)
    first, second, third = frame_gray(film, 0.5), frame_gray(film, 1.5), frame_gray(film, 2.5)
    assert first[36 // 2 * 64 + 1] < 20 and first[36 // 2 * 64 + 32] > 20, "the portrait clip is not first"
    assert len(set(second[64 * 10:64 * 20])) < 12, "the photo is not second"
    assert third[36 // 2 * 64 + 1] > 20, "the landscape clip is not third"
    stored = json.loads((s.dir / "var" / "storage" / "media" / f"{mid}.json").read_text())
    assert [c["id"] for c in stored["clips"]] == [ids[n] for n in ORDER]
    assert [c["caption"] for c in stored["clips"]] == ["1 Nov 2026", "2 Nov 2026", "3 Nov 2026", "5 Nov 2026"]
    events = [verify(h, b) for h, b in receiver.wait(5)]
    ready = [e for e in events if e["event"] == "montage.ready"]
    assert len(ready) == 1 and ready[0]["montage"]["id"] == mid and ready[0]["id"] == f"{mid}-ready"


def test_refusals_plan_scope_foreign_and_missing_media(make_server, receiver, inputs):
    s = server_with_hooks(make_server, receiver)
    ids = upload_all(s, inputs, names=("photo",))
    other = upload_all(s, inputs, album="a2", names=("photo",))
    body = {"period": "2026-11", "media": [{"id": ids["photo"]}]}
    r = post(s, montage_token(s, plan="free"), body)
    assert r.status_code == 403 and r.json()["error"] == "montage_requires_premium", r.text
    assert "premium" in r.json()["message"]
    r = post(s, s.token("--scope", "upload", "--user", "u1", "--album", "a1", "--plan", "premium"), body)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = post(s, montage_token(s, album="a2"), body)  # a token of another album
    assert r.status_code == 403
    missing = "A" * 22
    r = post(s, montage_token(s), {"period": "2026-11", "media": [{"id": ids["photo"]}, {"id": other["photo"]},
                                                                   {"id": missing}]})
    assert r.status_code == 422 and r.json()["error"] == "media_not_ready", r.text
    assert sorted(r.json()["media"], key=lambda x: x["id"]) == sorted(
        [{"id": other["photo"], "reason": "not_found"}, {"id": missing, "reason": "not_found"}], key=lambda x: x["id"])
    kinds = [json.loads(p.read_text()).get("kind") for p in (s.dir / "var" / "storage" / "media").iterdir()]
    assert "montage" not in kinds  # nothing was made
    for bad in ({"media": []}, {"period": "x/y", "media": [{"id": ids["photo"]}]},
                {"period": "p", "media": [{"id": ids["photo"]}, {"id": ids["photo"]}]},
                {"period": "p", "media": [{"id": ids["photo"], "start": -1}]}):
        assert post(s, montage_token(s), bad).status_code == 400, bad


def test_a_repeated_request_makes_one_montage(make_server, receiver, inputs):
    s = server_with_hooks(make_server, receiver)
    ids = upload_all(s, inputs, names=("photo", "fps24"))
    token = montage_token(s)
    body = {"period": "2026-11", "media": [{"id": ids["photo"]}, {"id": ids["fps24"], "start": 0.5}]}
    first = post(s, token, body)
    again = post(s, token, {**body, "media": body["media"][::-1]})  # the same media, listed otherwise
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.json()["created"] is False
    wait_montage(s, token, first.headers["location"])
    assert post(s, token, body).json()["id"] == first.json()["id"]
    other = post(s, token, {**body, "period": "2026"})
    assert other.json()["id"] != first.json()["id"]
    keyed = post(s, token, body, **{"Idempotency-Key": "k-1"})
    assert keyed.status_code == 202 and post(s, token, body, **{"Idempotency-Key": "k-1"}).json()["id"] == keyed.json()["id"]
    assert post(s, token, {**body, "period": "2025"}, **{"Idempotency-Key": "k-1"}).status_code == 409
    montages = [m for m in (json.loads(p.read_text()) for p in (s.dir / "var" / "storage" / "media").iterdir())
                if m.get("kind") == "montage"]
    assert len(montages) == 3  # the first, the other period, the keyed one
    time.sleep(0.5)
    for m in montages:
        wait_montage(s, token, f"/v1/albums/a1/montages/{m['id']}")
    ready = [e for e in (verify(h, b) for h, b in receiver.wait(5)) if e["event"] == "montage.ready"]
    assert sorted(e["montage"]["id"] for e in ready) == sorted(m["id"] for m in montages)


def test_kill_9_mid_montage_and_it_completes_after_restart(make_server, receiver, inputs, tmp_path):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_MONTAGES_PRESET="veryslow")
    ids = upload_all(s, inputs)
    token = montage_token(s)
    body = {"period": "2026", "media": [{"id": ids[n]} for n in ORDER] * 1}
    r = post(s, token, body)
    mid = r.json()["id"]
    path = s.dir / "var" / "storage" / "media" / f"{mid}.json"
    deadline = time.time() + 60
    while time.time() < deadline and json.loads(path.read_text())["status"] != "processing":
        time.sleep(0.01)
    assert json.loads(path.read_text())["status"] == "processing"
    s.signal(signal.SIGKILL)
    s.wait()
    assert json.loads(path.read_text())["status"] == "processing"  # killed mid-montage
    s.stop()
    s.start()
    m = wait_montage(s, token, f"/v1/albums/a1/montages/{mid}")
    assert m["status"] == "ready", m
    film = tmp_path / "film.mp4"
    film.write_bytes(requests.get(m["film"]["url"]).content)
    assert abs(float(probe(film)["format"]["duration"]) - 4) <= 0.1


def film(tmp_path, clips, *args):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"clips": clips}))
    p = subprocess.run([BIN, "montage-film", str(spec), str(tmp_path / "film.mp4"), *args], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def test_the_lively_second_follows_the_sound_else_the_picture(tmp_path):
    """A video silent but for a tone from 3 s; a silent one still but for movement from 2 s to 3 s."""
    loud = tmp_path / "loud.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=7", "-f", "lavfi", "-i",
           "aevalsrc='if(between(t,3,4),0.5*sin(2*PI*440*t),0)':s=48000:d=7", "-c:v", "libx264", "-g", "60",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", loud)
    still = tmp_path / "still.mp4"
    ffmpeg("-filter_complex", "color=black:s=320x240:d=7:r=30[b];testsrc2=s=320x240:d=7:r=30[t];"
           "[b][t]overlay=enable='between(t,2,3)'", "-c:v", "libx264", "-g", "60", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", still)
    clips = [{"kind": "video", "file": str(p), "small": str(p), "width": 320, "height": 240, "duration": 7}
             for p in (loud, still)]
    for args in ((), ("--sandbox",)):
        out = film(tmp_path, clips, *args)
        assert abs(out["starts"][0] - 3.0) <= 0.25, out
        assert abs(out["starts"][1] - 2.0) <= 0.25, out
        assert abs(out["duration"] - 2) < 0.01 and out["poster_variants"] == (8 if args else 0)
        assert abs(float(probe(tmp_path / "film.mp4")["format"]["duration"]) - 2) <= 0.1


def test_without_the_sandbox_montages_run_in_process(make_server, receiver, inputs):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_VIDEOS_SANDBOX="false")
    ids = upload_all(s, inputs, names=("photo", "fps24"))
    token = montage_token(s)
    r = post(s, token, {"period": "2026-11", "media": [{"id": ids["photo"]}, {"id": ids["fps24"], "start": 1}]})
    m = wait_montage(s, token, r.headers["location"])
    assert m["status"] == "ready" and abs(m["duration"] - 2) < 0.01, m
    view = s.token("--scope", "view", "--user", "u9", "--album", "a1", "--plan", "free")
    assert requests.get(s.http + r.headers["location"], headers={"Authorization": "Bearer " + view}).status_code == 200
    other = s.token("--scope", "view", "--user", "u9", "--album", "a2")
    assert requests.get(s.http + r.headers["location"].replace("/a1/", "/a2/"),
                        headers={"Authorization": "Bearer " + other}).status_code == 404
