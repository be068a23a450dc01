"""The video pipeline through `mediaedge video-transcode FILE OUTDIR`: inputs made here by
Debian's ffmpeg CLI (small sizes keep them fast), outputs checked with ffprobe: codecs,
dimensions after rotation, durations, moov before mdat, audio, no metadata, HDR tone-mapped
by colour distance to an SDR reference, plan limits on the header and on decoded frames,
refusals (playlists, truncation, caps) and, with --sandbox, the confined decoder child."""
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest
import requests

import photo_fixtures as pf
from conftest import BIN, SANITIZED
import swift_s3
from test_processing import (manifest, photo, receiver, server_with_hooks, server_with_hooks_unless_s3,  # noqa: F401
                             verify, wait_status)
from test_uploads import Client

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("ffmpeg", "ffprobe")),
                                reason="needs Debian's ffmpeg (./bootstrap check installs it)")

X265 = ["-c:v", "libx265", "-x265-params", "log-level=error", "-tag:v", "hvc1"]


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True, timeout=120)


def probe(path):
    p = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                        str(path)], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def boxes(data, start, end):
    """(type, offset, header size, size) of the ISO-BMFF boxes between start and end."""
    p = start
    while p + 8 <= end:
        size, kind = struct.unpack(">I4s", data[p:p + 8])
        hdr = 8
        if size == 1:
            size, hdr = struct.unpack(">Q", data[p + 8:p + 16])[0], 16
        elif size == 0:
            size = end - p
        if size < hdr:
            return
        yield kind, p, hdr, size
        p += size


def video_traks(data):
    """Offsets of each video track's tkhd payload, and every mvhd/tkhd/mdhd payload."""
    found = {"video_tkhd": [], "headers": []}
    for kind, p, hdr, size in boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for k2, p2, h2, s2 in boxes(data, p + hdr, p + size):
            if k2 == b"mvhd":
                found["headers"].append((b"mvhd", p2 + h2))
            if k2 != b"trak":
                continue
            tkhd, video = None, False
            for k3, p3, h3, s3 in boxes(data, p2 + h2, p2 + s2):
                if k3 == b"tkhd":
                    tkhd = p3 + h3
                    found["headers"].append((b"tkhd", tkhd))
                if k3 == b"mdia":
                    video = b"vide" in data[p3:p3 + s3]
                    for k4, p4, h4, s4 in boxes(data, p3 + h3, p3 + s3):
                        if k4 == b"mdhd":
                            found["headers"].append((b"mdhd", p4 + h4))
            if video and tkhd is not None:
                found["video_tkhd"].append(tkhd)
    return found


def rotate_90(path):
    """Gives the video track a display matrix turning it 90 degrees clockwise, as a phone
    held upright writes (ffmpeg 5.1's CLI no longer writes one)."""
    data = bytearray(open(path, "rb").read())
    for tk in video_traks(data)["video_tkhd"]:
        m = tk + 4 + (32 if data[tk] == 1 else 20) + 8 + 8
        h = struct.unpack(">I", data[m + 40:m + 44])[0]
        data[m:m + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, h, 0, 1 << 30)
    open(path, "wb").write(bytes(data))


def claim_duration(path, seconds):
    """Rewrites the movie, track and media headers' durations to say `seconds`."""
    data = bytearray(open(path, "rb").read())
    for kind, at in video_traks(data)["headers"]:
        v1 = data[at] == 1
        if kind == b"tkhd":  # no timescale of its own: the movie's
            continue
        scale_at = at + 4 + (16 if v1 else 8)
        scale = struct.unpack(">I", data[scale_at:scale_at + 4])[0]
        dur_at = scale_at + 4
        if v1:
            data[dur_at:dur_at + 8] = struct.pack(">Q", int(seconds * scale))
        else:
            data[dur_at:dur_at + 4] = struct.pack(">I", int(seconds * scale))
        if kind == b"mvhd":
            movie_scale = scale
    for kind, at in video_traks(data)["headers"]:
        if kind == b"tkhd":
            v1 = data[at] == 1
            dur_at = at + 4 + (16 if v1 else 8) + 8
            fmt = ">Q" if v1 else ">I"
            data[dur_at:dur_at + struct.calcsize(fmt)] = struct.pack(fmt, int(seconds * movie_scale))
    open(path, "wb").write(bytes(data))


def box_path(data, path, start=0, end=None):
    """(payload offset, payload size) of every box at path (a list of types) below start."""
    end = len(data) if end is None else end
    for kind, p, hdr, size in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield p + hdr, size - hdr
            else:
                yield from box_path(data, path[1:], p + hdr, p + size)


def delay_last_picture(path, seconds):
    """Gives the last picture a composition offset of `seconds`: the sample table (and every
    header) still says the video ends where it did, its decoded timestamps do not."""
    data = bytearray(open(path, "rb").read())
    (mdhd, _), = box_path(data, [b"moov", b"trak", b"mdia", b"mdhd"])
    scale = struct.unpack(">I", data[mdhd + 12:mdhd + 16])[0]
    (ctts, _), = box_path(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"ctts"])
    count = struct.unpack(">I", data[ctts + 4:ctts + 8])[0]
    last = ctts + 8 + (count - 1) * 8
    data[last + 4:last + 8] = struct.pack(">I", int(seconds * scale))
    open(path, "wb").write(bytes(data))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Every input, made once per run."""
    d = tmp_path_factory.mktemp("videos")
    f = {}
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3"]
    f["h264"] = d / "h264.mp4"
    ffmpeg(*src, *tone, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", f["h264"])
    f["rot"] = d / "rot.mov"
    ffmpeg(*src, *tone, *X265, "-c:a", "aac", "-shortest", f["rot"])
    rotate_90(f["rot"])
    # HDR: SMPTE bars (static, so any frame compares) graded into HLG and PQ the way HDR
    # masters place SDR white (BT.2408, 203 cd/m2), and the SDR original to compare with
    bars = ["-f", "lavfi", "-i", "smptehdbars=size=320x240:rate=30:duration=2"]
    f["sdr"] = d / "bars.mp4"
    ffmpeg(*bars, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "12", f["sdr"])
    for name, trc in (("hlg", "arib-std-b67"), ("pq", "smpte2084")):
        f[name] = d / f"{name}.mov"
        ffmpeg(*bars, "-vf", f"zscale=tin=bt709:min=bt709:pin=bt709:t={trc}:m=bt2020nc:p=bt2020:npl=203,"
               "format=yuv420p10le", *X265, "-color_primaries", "bt2020", "-color_trc", trc,
               "-colorspace", "bt2020nc", f[name])
    # variable frame rate: frames dropped irregularly, timestamps kept
    f["vfr"] = d / "vfr.mp4"
    ffmpeg(*src, *tone, "-vf", r"select='not(eq(mod(n\,7)\,3))*not(eq(mod(n\,11)\,5))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-c:a", "aac", f["vfr"])
    f["silent"] = d / "silent.mp4"
    ffmpeg(*src, "-c:v", "libx264", f["silent"])
    f["audio"] = d / "audio.mp4"
    ffmpeg(*tone, "-c:a", "aac", f["audio"])
    f["located"] = d / "located.mov"
    ffmpeg(*src, *tone, "-c:v", "libx264", "-c:a", "aac", "-shortest", "-metadata", "location=+48.8584+002.2945/",
           "-metadata", "make=Apple", "-metadata", "model=iPhone 14", "-metadata", "encoder=Super Cam 2",
           "-metadata", "creation_time=2021-05-01T10:34:56Z", f["located"])
    # 4 minutes 2 seconds, tiny and slow
    f["long"] = d / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=2:duration=242", "-c:v", "libx264", "-preset",
           "ultrafast", f["long"])
    f["liar"] = d / "liar.mp4"  # the same frames, every header saying 60 s
    shutil.copy(f["long"], f["liar"])
    claim_duration(f["liar"], 60)
    f["reordered"] = d / "reordered.mp4"  # 60 s of frames by every table, the last shown at 4:19
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=2:duration=60", "-c:v", "libx264", "-preset", "veryfast",
           "-use_editlist", 0, f["reordered"])
    delay_last_picture(f["reordered"], 200)
    f["fragmented"] = d / "fragmented.mp4"
    ffmpeg("-i", f["long"], "-c", "copy", "-movflags", "frag_keyframe+empty_moov+skip_trailer", "-frag_duration",
           10000000, f["fragmented"])
    claim_duration(f["fragmented"], 60)
    f["hls"] = d / "playlist.mp4"
    f["hls"].write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n"
                        f"#EXTINF:10,\nfile://{f['h264']}\n#EXT-X-ENDLIST\n")
    f["concat"] = d / "concat.mp4"
    f["concat"].write_text(f"ffconcat version 1.0\nfile '{f['h264']}'\nfile 'http://127.0.0.1:9/b.mp4'\n")
    f["boxed"] = d / "boxed.mp4"  # a playlist behind an MP4's first box: sniffs as MP4
    f["boxed"].write_bytes(struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0) + f["hls"].read_bytes())
    fast = d / "fast.mp4"
    ffmpeg(*src, *tone, "-c:v", "libx264", "-c:a", "aac", "-shortest", "-movflags", "+faststart", fast)
    data = fast.read_bytes()
    f["truncated"] = d / "truncated.mp4"
    f["truncated"].write_bytes(data[:len(data) * 6 // 10])
    f["no_moov"] = d / "no_moov.mp4"  # moov at the end, cut off
    f["no_moov"].write_bytes(f["h264"].read_bytes()[:40000])
    f["wide"] = d / "wide.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=4112x16:rate=5:duration=1", "-c:v", "libx264", "-preset",
           "ultrafast", f["wide"])
    return f


def transcode(tmp_path, src, *args, env=None):
    """Runs the pipeline on src; returns (exit status, JSON printed, output dir, stderr)."""
    out = tmp_path / ("out-" + os.path.basename(str(src)))
    out.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAEDGE_")}
    e.update(env or {})
    p = subprocess.run([BIN, "video-transcode", str(src), str(out), *args], env=e, capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout), out, p.stderr


def ok(tmp_path, src, *args):
    rc, facts, out, err = transcode(tmp_path, src, *args)
    assert rc == 0, facts
    return facts, out, err


def duration_of(path):
    return float(probe(path)["format"]["duration"])


def check_rendition(path, width, height, duration, audio):
    info = probe(path)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    sound = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1 and video[0]["codec_name"] == "h264" and video[0]["profile"] == "High", video
    assert video[0]["pix_fmt"] == "yuv420p"
    assert (video[0]["width"], video[0]["height"]) == (width, height)
    assert not video[0].get("side_data_list"), "a rendition carries no rotation"
    assert abs(float(info["format"]["duration"]) - duration) <= 0.1, (info["format"]["duration"], duration)
    if audio:
        assert len(sound) == 1 and sound[0]["codec_name"] == "aac" and sound[0]["profile"] == "LC"
        assert sound[0]["sample_rate"] == "48000" and sound[0]["channels"] == 2
    else:
        assert sound == []
    # faststart: the moov atom before the media data
    data = open(path, "rb").read()
    order = [k for k, *_ in boxes(data, 0, len(data))]
    assert order[0] == b"ftyp" and b"moov" in order and order.index(b"moov") < order.index(b"mdat"), order
    # nothing about the source or the software
    tags = dict(info["format"].get("tags", {}))
    for s in info["streams"]:
        tags.update({"stream." + k: v for k, v in s.get("tags", {}).items()})
    assert set(tags) <= {"major_brand", "minor_version", "compatible_brands", "stream.language",
                         "stream.handler_name", "stream.vendor_id"}, tags
    for needle in (b"x264", b"Lavf", b"Lavc", b"\xa9xyz", b"\xa9mak", b"\xa9mod", b"\xa9too", b"ISO6709"):
        assert needle not in data, needle


def test_h264_mp4_becomes_two_renditions_and_a_poster(tmp_path, media):
    facts, out, _ = ok(tmp_path, media["h264"])
    assert facts["kind"] == "video" and facts["format"] == "mp4"
    assert (facts["width"], facts["height"], facts["rotation"]) == (320, 240, 0)
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert facts["audio_channels"] == 1 and facts["audio_rate"] == 44100
    assert facts["dynamic_range"] == "sdr" and facts["bit_depth"] == 8 and not facts["vfr"]
    assert abs(facts["fps"] - 30) < 0.1 and abs(facts["duration"] - duration_of(media["h264"])) <= 0.1
    assert facts["has_location"] is False and facts["taken_at"] is None
    assert [r["name"] for r in facts["renditions"]] == ["720p", "360p"]
    for r in facts["renditions"]:  # never upscaled: the source is smaller than both
        assert (r["width"], r["height"]) == (320, 240) and r["bytes"] == os.path.getsize(out / f"{r['name']}.mp4")
        check_rendition(out / f"{r['name']}.mp4", 320, 240, duration_of(media["h264"]), audio=True)
    names = [(v["name"], v["format"]) for v in facts["poster"]["variants"]]
    assert names == [(n, f) for n in ("thumb", "small", "medium", "large") for f in ("jpg", "webp")]
    assert abs(facts["poster"]["time"] - 1.0) < 0.05
    for n, f in names:
        assert (out / f"{n}.{f}").stat().st_size > 0


def test_smaller_renditions_scale_the_long_edge(tmp_path, media):
    facts, out, _ = ok(tmp_path, media["h264"], "--renditions", "small:160,tiny:100:300")
    assert [(r["name"], r["width"], r["height"]) for r in facts["renditions"]] == [("small", 160, 120),
                                                                                   ("tiny", 100, 76)]
    check_rendition(out / "small.mp4", 160, 120, duration_of(media["h264"]), audio=True)
    check_rendition(out / "tiny.mp4", 100, 76, duration_of(media["h264"]), audio=True)


def frame_rgb(path, at=1.0, size=None):
    args = ["ffmpeg", "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1"]
    if size:
        args += ["-vf", f"scale={size}"]
    return subprocess.run(args + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                          check=True).stdout


def mean_delta_e(a, b, w, h, step=6):
    total = n = 0
    for y in range(0, h, step):
        for x in range(0, w, step):
            i = (y * w + x) * 3
            total += pf.delta_e(tuple(a[i:i + 3]), tuple(b[i:i + 3]))
            n += 1
    return total / n


def test_rotated_hevc_mov_is_turned_upright_in_pixels(tmp_path, media):
    facts, out, _ = ok(tmp_path, media["rot"])
    assert facts["format"] == "mov" and facts["video_codec"] == "hevc"
    assert (facts["width"], facts["height"], facts["rotation"]) == (240, 320, 90)
    check_rendition(out / "720p.mp4", 240, 320, duration_of(media["rot"]), audio=True)
    # the same picture as ffmpeg's own autorotation of the source
    ours = frame_rgb(out / "720p.mp4")
    theirs = frame_rgb(media["rot"])
    assert len(ours) == len(theirs) == 240 * 320 * 3
    assert mean_delta_e(ours, theirs, 240, 320) < 5


@pytest.mark.parametrize("name", ["hlg", "pq"])
def test_hdr_is_tone_mapped_to_sdr_bt709(tmp_path, media, name):
    facts, out, _ = ok(tmp_path, media[name])
    assert facts["bit_depth"] == 10 and facts["dynamic_range"] == name
    assert facts["color_primaries"] == "bt2020"
    info = probe(out / "720p.mp4")["streams"][0]
    assert info["pix_fmt"] == "yuv420p" and info.get("color_transfer") == "bt709"
    assert info.get("color_primaries") == "bt709" and info.get("color_space") == "bt709"
    ref = frame_rgb(media["sdr"])
    ours = frame_rgb(out / "720p.mp4")
    untouched = frame_rgb(media[name])  # the HDR signal shown as if it were SDR: the control
    assert mean_delta_e(ref, untouched, 320, 240) > 15
    assert mean_delta_e(ref, ours, 320, 240) < 9
    luma = lambda px: sum(px[1::3]) / (len(px) / 3)  # noqa: E731 (neither dark nor washed out)
    assert abs(luma(ours) - luma(ref)) < 10


def test_variable_frame_rate_stays_in_step_with_the_sound(tmp_path, media):
    facts, out, _ = ok(tmp_path, media["vfr"])
    assert facts["vfr"] is True
    streams = probe(out / "720p.mp4")["streams"]
    v = next(s for s in streams if s["codec_type"] == "video")
    a = next(s for s in streams if s["codec_type"] == "audio")
    assert abs(float(v["duration"]) - float(a["duration"])) < 0.1, (v["duration"], a["duration"])
    assert int(v["nb_frames"]) < 90  # the dropped frames are not made up
    check_rendition(out / "720p.mp4", 320, 240, duration_of(media["vfr"]), audio=True)


def test_no_audio_gives_a_silent_rendition(tmp_path, media):
    facts, out, _ = ok(tmp_path, media["silent"])
    assert facts["audio_codec"] is None and facts["renditions"][0]["audio_codec"] is None
    check_rendition(out / "720p.mp4", 320, 240, duration_of(media["silent"]), audio=False)


def test_audio_only_is_not_a_video(tmp_path, media):
    rc, err, out, _ = transcode(tmp_path, media["audio"])
    assert rc == 1 and err["error"] == "unsupported_media_type", err
    assert "no picture" in err["message"]
    assert os.listdir(out) == []


def test_location_and_device_metadata_never_reach_a_rendition(tmp_path, media):
    src = probe(media["located"])["format"]["tags"]
    assert "location" in src or any("location" in k for k in src), src  # the control
    facts, out, _ = ok(tmp_path, media["located"])
    assert facts["has_location"] is True
    assert facts["taken_at"] == "2021-05-01T10:34:56Z"
    for r in ("720p", "360p"):
        check_rendition(out / f"{r}.mp4", 320, 240, duration_of(media["located"]), audio=True)


def test_progress_is_reported(tmp_path, media):
    _, _, err = ok(tmp_path, media["h264"], "--progress")
    lines = [json.loads(x) for x in err.splitlines() if x.startswith('{"progress"')]
    assert len(lines) >= 2 and lines[0]["progress"] == 0 and 0 < lines[-1]["progress"] <= 1, err


LIMIT_MESSAGE = "Videos on the free plan can be up to 3 minutes long; this one is 4 minutes 2 seconds."


def test_four_minutes_is_too_long_for_free_and_fine_for_premium(tmp_path, media):
    rc, err, out, _ = transcode(tmp_path, media["long"], "--plan", "free", "--max-duration", "180")
    assert rc == 1 and err["error"] == "video_too_long" and err["message"] == LIMIT_MESSAGE, err
    assert "header" in err["detail"]  # refused from the container's header, before any decoding
    assert os.listdir(out) == []
    facts, out, _ = ok(tmp_path, media["long"], "--plan", "premium", "--max-duration", "600",
                       "--renditions", "small:64")
    assert abs(facts["duration"] - 242) < 1
    check_rendition(out / "small.mp4", 64, 48, duration_of(media["long"]), audio=False)


def test_a_header_claiming_less_than_the_frames_hold_fails(tmp_path, media):
    assert abs(duration_of(media["liar"]) - 60) < 1  # the control: ffprobe believes it
    rc, err, _, _ = transcode(tmp_path, media["liar"], "--plan", "free", "--max-duration", "180")
    assert rc == 1 and err["error"] == "video_too_long" and err["message"] == LIMIT_MESSAGE, err
    # a fragmented file whose movie header says 60 s: the fragments' sample tables, read
    # before any decoding, say 242 (the decoded timestamps would too)
    rc, err, out, _ = transcode(tmp_path, media["fragmented"], "--plan", "free", "--max-duration", "180")
    assert rc == 1 and err["error"] == "video_too_long" and err["message"] == LIMIT_MESSAGE, err
    assert os.listdir(out) == []
    # every table says 60 s; a picture's decoded timestamp says 4:19: the frames decide
    assert abs(duration_of(media["reordered"]) - 60) < 1  # the control
    rc, err, out, _ = transcode(tmp_path, media["reordered"], "--plan", "free", "--max-duration", "180")
    assert rc == 1 and err["error"] == "video_too_long", err
    assert "decoded past" in err["detail"] and "this one is 4 minutes 19 seconds" in err["message"], err
    assert os.listdir(out) == []


@pytest.mark.parametrize("name,sandbox", [("hls", False), ("concat", False), ("boxed", False), ("hls", True),
                                          ("boxed", True)])
def test_playlists_are_refused_and_open_nothing(tmp_path, media, name, sandbox):
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    log = tmp_path / "strace.log"
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=openat,open,connect,socket",
                        BIN, "video-transcode", *(["--sandbox"] if sandbox else []), str(media[name]), str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    err = json.loads(p.stdout)
    assert err["error"] in ("unsupported_media_type", "corrupt"), err
    calls = log.read_text()
    assert "connect(" not in calls and "socket(" not in calls, calls
    assert str(media["h264"]) not in calls, "the playlist's entry was opened"
    assert os.listdir(out) == []


def test_truncated_files_fail_as_corrupt(tmp_path, media):
    for name in ("truncated", "no_moov"):
        rc, err, out, _ = transcode(tmp_path, media[name])
        assert rc == 1 and err["error"] == "corrupt", (name, err)
        assert err["message"] == "The video is damaged or cut short; upload it again from the phone."
        assert os.listdir(out) == []


def test_over_the_dimension_caps_is_refused_before_decoding(tmp_path, media):
    rc, err, out, _ = transcode(tmp_path, media["wide"])
    assert rc == 1 and err["error"] == "too_large", err
    assert "4096x4096" in err["message"] and "4112x16" in err["detail"]
    assert os.listdir(out) == []


# ---- the confined decoder child (--sandbox: as the server runs a video job) ----

def children_named(pid, name):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[1:2] == [name.encode()]:
                        found.append(kid)
            except FileNotFoundError:
                continue
    return found


def test_sandboxed_job_gives_the_same_results(tmp_path, media):
    facts, out, err = ok(tmp_path, media["rot"], "--sandbox", "--progress")
    assert (facts["width"], facts["height"], facts["rotation"]) == (240, 320, 90)
    check_rendition(out / "720p.mp4", 240, 320, duration_of(media["rot"]), audio=True)
    assert [v["name"] for v in facts["poster"]["variants"]][:2] == ["thumb", "thumb"]
    assert (out / "thumb.jpg").stat().st_size > 0
    assert '{"progress":0.000' in err
    hdr, _, _ = ok(tmp_path, media["hlg"], "--sandbox")  # tone mapping in the child: the same facts
    plain, _, _ = ok(tmp_path, media["hlg"])
    for f in (hdr, plain):
        for r in f["renditions"]:
            r.pop("bytes")
        f["poster"]["variants"] = [(v["name"], v["width"], v["height"]) for v in f["poster"]["variants"]]
    assert hdr == plain
    for name in ("long", "truncated", "audio", "wide"):  # refusals come back the same way
        rc, e1, _, _ = transcode(tmp_path, media[name], "--max-duration", "180", "--plan", "free")
        rc2, e2, _, _ = transcode(tmp_path, media[name], "--max-duration", "180", "--plan", "free", "--sandbox")
        assert rc == rc2 == 1 and e1 == e2, (e1, e2)


def test_the_video_decoder_is_confined_and_holds_no_secret(tmp_path, media):
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, MEDIAEDGE_WEBHOOKS_SECRET="whsec-video-secret-xyz")
    p = subprocess.Popen([BIN, "video-transcode", "--sandbox", "--progress", "--preset", "veryslow",
                          "--max-memory", "1GiB", str(media["h264"]), str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stderr.readline()  # the child has begun decoding
        assert line.startswith('{"progress"'), line
        pid, = children_named(p.pid, "video-decoder")
        with open(f"/proc/{pid}/status") as f:
            st = dict(x.rstrip("\n").split(":\t", 1) for x in f if ":\t" in x)
        assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1", st
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert not [e for e in f.read().split(b"\0") if e.startswith(b"MEDIAEDGE_")]
        if not SANITIZED:
            with open(f"/proc/{pid}/limits") as f:
                data = next(x for x in f if x.startswith("Max data size"))
            assert data.split()[3] == str(1 << 30), data
    finally:
        p.communicate(timeout=120)
    assert p.returncode == 0


def test_a_memory_bomb_fails_cleanly(tmp_path):
    if SANITIZED:
        pytest.skip("sanitizer builds run the decoder without a memory limit")
    big = tmp_path / "big.mp4"  # 1080p: more than 64 MiB to decode and encode
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=5:duration=1", "-c:v", "libx264", "-preset", "ultrafast", big)
    rc, err, out, _ = transcode(tmp_path, big, "--sandbox", "--max-memory", "64MiB")
    assert rc == 1 and err["error"] == "too_large", err
    assert err["message"] == "The video needs more memory than this server gives one video."
    assert os.listdir(out) == []
    facts, _, _ = ok(tmp_path, big, "--sandbox", "--max-memory", "1GiB")  # the control
    assert facts["width"] == 1920


# ---- in the server: uploads through to ready, the plan's limit, progress, lanes, SIGTERM ----

def storage_of(server):
    return server.dir / "var" / "storage"


# the video path through storage on S3 too (one representative case), in the long suite only:
# it took about 9 s in a loaded check run (3.5 s on a quiet machine), over CI's budget for it
@pytest.mark.parametrize("storage_backend", swift_s3.BACKENDS if os.environ.get("ME_LONG") == "1" else ["file"])
def test_a_video_upload_becomes_ready_with_renditions_and_a_poster(make_server, receiver, media, storage_backend,
                                                                    tmp_path):
    s = server_with_hooks_unless_s3(make_server, receiver, storage_backend)
    _, r = Client(s, plan="free").upload(media["rot"].read_bytes())
    media_id = r.headers["media-id"]
    m = wait_status(s, media_id, ("ready", "failed"), timeout=60)
    assert m["status"] == "ready", m
    assert m["kind"] == "video" and (m["original"]["width"], m["original"]["height"]) == (240, 320)
    assert m["original"]["format"] == "mov" and m["rotation"] == 90
    assert abs(m["duration"] - duration_of(media["rot"])) <= 0.1
    assert "progress" not in m and "renditions" not in m
    v = m["variants"]["720p.mp4"]
    assert v["key"] == f"variants/a1/{media_id}/720p.mp4" and (v["width"], v["height"]) == (240, 320)
    assert v["content_type"] == "video/mp4" and v["video_codec"] == "h264" and v["audio_codec"] == "aac"
    assert abs(v["duration"] - duration_of(media["rot"])) <= 0.1
    for name in ("720p.mp4", "360p.mp4", "thumb.jpg", "thumb.webp", "large.jpg"):
        assert len(s.storage.read(m["variants"][name]["key"])) == m["variants"][name]["bytes"], name
    rendition = tmp_path / "720p.mp4"
    rendition.write_bytes(s.storage.read(v["key"]))
    check_rendition(rendition, 240, 320, duration_of(media["rot"]), audio=True)
    if storage_backend == "file":  # S3 is a production profile: no plain http:// webhook
        body = verify(*receiver.wait(1)[0])
        assert body["event"] == "media.ready" and body["media"]["variants"]["360p.mp4"]["width"] == 240
    metrics = requests.get(s.http + "/metrics").text
    assert 'mediaedge_jobs_total{kind="video",outcome="ready"} 1' in metrics
    seconds = [x for x in metrics.splitlines() if x.startswith("mediaedge_video_seconds_processed_total ")]
    assert seconds and float(seconds[0].split()[1]) >= 2, seconds  # counted at each decoded second


def test_too_long_for_the_plan_fails_and_the_original_goes(make_server, receiver, media):
    s = server_with_hooks(make_server, receiver)
    _, r = Client(s, plan="free").upload(media["long"].read_bytes())
    media_id = r.headers["media-id"]
    m = wait_status(s, media_id, ("ready", "failed"), timeout=60)
    assert m["status"] == "failed" and m["error"] == {"code": "video_too_long", "message": LIMIT_MESSAGE}, m
    assert not (storage_of(s) / "originals" / "a1" / media_id).exists()
    assert not (storage_of(s) / "variants" / "a1" / media_id).exists()
    assert verify(*receiver.wait(1)[0])["event"] == "media.failed"
    # premium takes it; and the limits are configuration
    _, r = Client(s, plan="premium").upload(media["long"].read_bytes())
    assert wait_status(s, r.headers["media-id"], timeout=60)["status"] == "ready"
    s2 = server_with_hooks(make_server, receiver, MEDIAEDGE_PLANS_LONGEST_VIDEO="free:5m,premium:10m")
    _, r = Client(s2, plan="free").upload(media["long"].read_bytes())
    assert wait_status(s2, r.headers["media-id"], timeout=60)["status"] == "ready"


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A video that takes several seconds with libx264's slowest preset."""
    path = tmp_path_factory.mktemp("slow") / "slow.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=8", "-f", "lavfi", "-i",
           "sine=duration=8", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", path)
    return path


def wait_progress(server, media_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = manifest(server, media_id)
        if m is not None and "progress" in m:
            return m
        time.sleep(0.05)
    raise AssertionError(f"no progress: {manifest(server, media_id)}")


def test_progress_while_a_video_runs_and_photos_keep_moving(make_server, receiver, slow, tmp_path):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_VIDEOS_PRESET="veryslow", MEDIAEDGE_JOBS_WORKERS="1")
    _, r = Client(s).upload(slow.read_bytes())
    video_id = r.headers["media-id"]
    m = wait_progress(s, video_id)
    assert m["status"] == "processing" and 0 < m["progress"] < 1, m
    _, r = Client(s).upload(photo(tmp_path))  # the photo lane is free
    p = wait_status(s, r.headers["media-id"], timeout=60)
    assert p["status"] == "ready"
    assert manifest(s, video_id)["status"] == "processing", "the photo waited for the video"
    m = wait_status(s, video_id, timeout=120)
    assert m["status"] == "ready" and "progress" not in m


def test_sigterm_hands_a_running_video_back(make_server, receiver, slow):
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_VIDEOS_PRESET="veryslow",
                          MEDIAEDGE_SHUTDOWN_DRAIN_TIMEOUT="2s")
    _, r = Client(s).upload(slow.read_bytes())
    media_id = r.headers["media-id"]
    wait_progress(s, media_id)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30) == 0
    m = manifest(s, media_id)
    assert m["status"] == "uploaded" and "progress" not in m, m
    assert (storage_of(s) / "jobs" / f"{media_id}.json").exists()
    assert not (storage_of(s) / "variants" / "a1" / media_id).exists()  # nothing half-stored
    assert receiver.deliveries == []
    s.env["MEDIAEDGE_VIDEOS_PRESET"] = "ultrafast"
    s.start()  # the next process redoes it from the start
    assert wait_status(s, media_id, timeout=60)["status"] == "ready"


def test_without_the_sandbox_videos_run_in_process(make_server, receiver, media, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_VIDEOS_SANDBOX="false", TMPDIR=str(tmp))
    _, r = Client(s).upload(media["h264"].read_bytes())
    m = wait_status(s, r.headers["media-id"], timeout=60)
    assert m["status"] == "ready" and m["variants"]["720p.mp4"]["audio_codec"] == "aac", m
    assert children_named(s.proc.pid, "video-decoder") == []
    assert [p.name for p in tmp.iterdir() if p.name.startswith("mediaedge-video-")] == []  # its scratch went


def test_tus_js_client_uploads_a_video_through_to_ready(make_server, receiver, media):
    tus = pytest.importorskip("test_tus_js")
    if tus.NODE is None or not (tus.NODE_DIR / "node_modules" / "tus-js-client").is_dir():
        pytest.skip("needs node and tus-js-client: npm ci --prefix tests/integration/node")
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_HTTP_MAX_PATCH_SIZE="64KiB")
    data = media["located"].read_bytes()
    res = tus.run_upload(s, tus.upload_token(s, "u1", "a1"), media["located"], 64 * 1024)
    assert res["ok"] and res["exit"] == 0, res
    media_id = res["mediaId"]
    m = wait_status(s, media_id, timeout=60)
    assert m["original"]["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    assert m["status"] == "ready" and m["has_location"] is True and m["original"]["content_type"] == "video/quicktime"
    check_rendition(storage_of(s) / m["variants"]["360p.mp4"]["key"], 320, 240, duration_of(media["located"]),
                    audio=True)
    body = verify(*receiver.wait(1)[0])
    assert body["event"] == "media.ready" and body["media"]["id"] == media_id


def test_clean_exit_after_videos_frees_everything(make_server, media):
    """As test_shutdown's clean exit, with the video lane having worked (and handed nothing
    back): under the sanitizer build LeakSanitizer would report a leak at exit."""
    supp = os.path.join(os.environ.get("ME_SRCDIR", "."), "tests", "integration", "lsan-server.supp")
    s = make_server(env={"ASAN_OPTIONS": "detect_leaks=1", "LSAN_OPTIONS": f"suppressions={supp}",
                         "MEDIAEDGE_SERVER_ROLE": "all"}).start()
    _, r = Client(s).upload(media["h264"].read_bytes())
    assert wait_status(s, r.headers["media-id"], timeout=60)["status"] == "ready"
    _, r = Client(s).upload(media["truncated"].read_bytes())
    assert wait_status(s, r.headers["media-id"], timeout=60)["status"] == "failed"
    s.signal(signal.SIGTERM)
    assert s.wait(30) == 0, s.log_text()[-3000:]
    assert "LeakSanitizer" not in s.log_text()
