"""The photo pipeline through `mediaedge photo-variants FILE OUTDIR`: formats, sizes,
orientation by pixels, colour by ΔE against the source and ImageMagick, metadata stripped
(exiftool), facts, and refusals (bombs, truncation, other formats) in bounded time and memory."""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

import photo_fixtures as pf
from conftest import BIN, SANITIZED

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("vips", "exiftool", "heif-enc", "convert")),
                                reason="needs libvips-tools, libimage-exiftool-perl, libheif-examples, imagemagick (./bootstrap check installs them)")

VARIANTS = ["thumb", "small", "medium", "large"]
SIZES = {"thumb": 320, "small": 640, "medium": 1280, "large": 2048}


def variants(tmp_path, src, env=None):
    """Runs the pipeline on src; returns (exit status, JSON printed, output dir)."""
    out = tmp_path / ("out-" + os.path.basename(str(src)))
    out.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAEDGE_")}
    e.update(env or {})
    p = subprocess.run([BIN, "photo-variants", str(src), str(out)], env=e, capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout), out


def ok(tmp_path, src, env=None):
    rc, facts, out = variants(tmp_path, src, env)
    assert rc == 0, facts
    assert [(v["name"], v["format"]) for v in facts["variants"]] == [(n, f) for n in VARIANTS for f in ("jpg", "webp")]
    return facts, out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Every fixture, made once per run."""
    d = tmp_path_factory.mktemp("photos")
    f = {}

    def path(name):
        return d / name

    # a 3000x2000 photo-like JPEG (noise, blurred), and its progressive twin
    pf.sh("vips", "gaussnoise", path("n.v"), 3000, 2000, "--sigma", 50, "--mean", 128)
    pf.sh("vips", "bandjoin_const", path("n.v"), path("n3.v"), "0 0")
    pf.sh("vips", "gaussblur", path("n3.v"), path("nb.v"), 1.5)
    pf.sh("vips", "cast", path("nb.v"), path("nc.v"), "uchar")
    f["big"] = path("big.jpg")
    pf.sh("vips", "copy", path("nc.v"), f"{f['big']}[Q=90]")
    f["progressive"] = path("progressive.jpg")
    pf.sh("convert", f["big"], "-interlace", "Plane", "-quality", "90", f["progressive"])
    # the upright quadrant picture (landscape 400x300) and each orientation of it
    pf.write_ppm(path("upright.ppm"), 400, 300, pf.quadrant_pixel(400, 300))
    for o in range(1, 9):
        f[f"orient{o}"] = path(f"orient{o}.jpg")
        pf.stored_for(path("upright.ppm"), o, f[f"orient{o}"])
        pf.sh("exiftool", "-q", "-overwrite_original", f"-Orientation#={o}", f[f"orient{o}"])
    # an iPhone-like HEIC: landscape pixels, irot 270 CCW (= 90 CW) and EXIF Orientation 6,
    # both meaning the same quarter turn
    pf.write_ppm(path("portrait.ppm"), 300, 400, pf.quadrant_pixel(300, 400))
    pf.stored_for(path("portrait.ppm"), 6, path("heic-src.jpg"))
    pf.sh("exiftool", "-q", "-overwrite_original", "-Orientation#=6", "-DateTimeOriginal=2023:07:14 18:05:09",
          "-OffsetTimeOriginal=-04:00", path("heic-src.jpg"))
    f["heic"] = path("iphone.heic")
    pf.sh("heif-enc", "-q", "90", path("heic-src.jpg"), "-o", f["heic"])
    pf.heif_add_irot(f["heic"], 3)
    # metadata: GPS, a date with its offset, XMP, IPTC
    f["gps"] = path("gps.jpg")
    shutil.copy(f["orient1"], f["gps"])
    pf.sh("exiftool", "-q", "-overwrite_original", "-GPSLatitude=51.5074", "-GPSLatitudeRef=N",
          "-GPSLongitude=0.1278", "-GPSLongitudeRef=W", "-DateTimeOriginal=2021:05:01 12:34:56",
          "-OffsetTimeOriginal=+02:00", "-XMP-dc:Creator=Grandma", "-IPTC:Keywords=family",
          "-Make=TestCam", f["gps"])
    # colour: sRGB patches, and the same colours in Display P3, Adobe RGB and CMYK
    pf.write_ppm(path("patches.ppm"), 400, 200, pf.patch_pixel)
    f["p3"] = path("p3.jpg")
    pf.sh("vips", "icc_transform", path("patches.ppm"), f"{f['p3']}[Q=97]", "p3", "--input-profile", "srgb")
    f["p3heic"] = path("p3.heic")
    pf.sh("vips", "icc_transform", path("patches.ppm"), path("p3.png"), "p3", "--input-profile", "srgb")
    pf.sh("heif-enc", "-q", "95", "-p", "chroma=444", path("p3.png"), "-o", f["p3heic"])
    f["adobe"] = path("adobe.jpg")
    pf.sh("vips", "icc_transform", path("patches.ppm"), f"{f['adobe']}[Q=97]", pf.ADOBE_ICC,
          "--input-profile", "srgb")
    f["cmyk"] = path("cmyk.jpg")
    pf.sh("vips", "icc_transform", path("patches.ppm"), f"{f['cmyk']}[Q=97]", "cmyk", "--input-profile", "srgb")
    # PNG with alpha: left half opaque red, right half fully transparent
    f["alpha"] = path("alpha.png")
    pf.write_png(f["alpha"], 200, 100, 8, 6, (b"".join(bytes((200, 30, 30, 255 if x < 100 else 0)) for x in range(200))
                                           for _ in range(100)))
    # 16-bit PNG of one colour whose 8-bit value is known
    f["png16"] = path("deep.png")
    pf.write_png(f["png16"], 64, 48, 16, 2, (bytes.fromhex("80804040c0c0") * 64 for _ in range(48)))
    # WebP, and an animated GIF (first frame red, second blue)
    f["webp"] = path("patches.webp")
    pf.sh("vips", "copy", path("patches.ppm"), f"{f['webp']}[Q=95]")
    f["gif"] = path("anim.gif")
    pf.sh("convert", "-delay", "10", "-size", "120x80", "xc:#e01010", "xc:#1010e0", "-loop", "0", f["gif"])
    # refused: a decompression bomb, truncated and corrupt JPEGs, an SVG and a PDF named .jpg
    f["bomb"] = path("bomb.png")
    row = bytes(3750)
    pf.write_png(f["bomb"], 30000, 30000, 1, 0, (row for _ in range(30000)))
    data = open(f["big"], "rb").read()
    f["truncated"] = path("truncated.jpg")
    open(f["truncated"], "wb").write(data[:len(data) * 6 // 10])
    f["corrupt"] = path("corrupt.jpg")
    open(f["corrupt"], "wb").write(data[:4] + bytes(range(256)) * 40)
    f["svg"] = path("drawing.jpg")
    open(f["svg"], "w").write('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
    f["pdf"] = path("document.jpg")
    open(f["pdf"], "wb").write(pf.MINIMAL_PDF)  # ImageMagick's Debian policy refuses to write PDF
    f["tiny"] = path("tiny.png")
    pf.write_png(f["tiny"], 200, 100, 8, 2, (bytes((10, 120, 200)) * 200 for _ in range(100)))
    return f


def test_sizes_of_a_large_photo(tmp_path, photos):
    facts, out = ok(tmp_path, photos["big"])
    assert (facts["format"], facts["width"], facts["height"]) == ("jpeg", 3000, 2000)
    got = {(v["name"], v["format"]): (v["width"], v["height"]) for v in facts["variants"]}
    for name in VARIANTS:
        for fmt in ("jpg", "webp"):
            w, h = got[(name, fmt)]
            if name == "thumb":
                assert (w, h) == (320, 320)
            else:
                assert (w, h) == (SIZES[name], round(SIZES[name] * 2 / 3))
            hdr = pf.sh("vipsheader", "-f", "width", out / f"{name}.{fmt}").stdout.decode().strip()
            assert int(hdr) == w
    # progressive, optimised JPEGs
    info = pf.sh("exiftool", "-s3", "-EncodingProcess", out / "large.jpg").stdout.decode()
    assert "Progressive" in info


def test_small_photos_are_never_upscaled(tmp_path, photos):
    facts, out = ok(tmp_path, photos["tiny"])
    sizes = {v["name"]: (v["width"], v["height"]) for v in facts["variants"]}
    assert sizes == {"thumb": (100, 100), "small": (200, 100), "medium": (200, 100), "large": (200, 100)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_once(tmp_path, photos, orientation):
    src = photos[f"orient{orientation}"]
    assert pf.sh("exiftool", "-s3", "-n", "-Orientation", src).stdout.decode().strip() == str(orientation)
    facts, out = ok(tmp_path, src)
    assert (facts["width"], facts["height"]) == (400, 300)
    for fmt in ("jpg", "webp"):
        img = pf.read_pixels(out / f"large.{fmt}", tmp_path)
        assert img[:2] == (400, 300)
        for corner, (x, y) in {"tl": (50, 40), "tr": (350, 40), "bl": (50, 260), "br": (350, 260)}.items():
            assert pf.delta_e(pf.pixel_at(img, x, y), pf.QUADRANTS[corner]) < 5, (fmt, corner)
        assert "Orientation" not in pf.sh("exiftool", "-s", out / f"large.{fmt}").stdout.decode()


def test_iphone_heic_with_irot_and_exif_orientation_turns_once(tmp_path, photos):
    src = photos["heic"]
    assert pf.sh("exiftool", "-s3", "-n", "-Orientation", src).stdout.decode().strip() == "6"
    assert b"irot" in open(src, "rb").read()
    facts, out = ok(tmp_path, src)
    assert (facts["format"], facts["width"], facts["height"]) == ("heif", 300, 400)
    assert facts["taken_at"] == "2023-07-14T18:05:09-04:00"
    img = pf.read_pixels(out / "large.jpg", tmp_path)
    assert img[:2] == (300, 400)
    for corner, (x, y) in {"tl": (40, 50), "tr": (260, 50), "bl": (40, 350), "br": (260, 350)}.items():
        assert pf.delta_e(pf.pixel_at(img, x, y), pf.QUADRANTS[corner]) < 6, corner


@pytest.mark.parametrize("name,profile", [("p3", None), ("p3heic", None), ("adobe", pf.ADOBE_ICC), ("cmyk", None)])
def test_colour_through_the_embedded_profile(tmp_path, photos, name, profile):
    src = photos[name]
    assert "ICC_Profile" in pf.sh("exiftool", "-G", "-s", src).stdout.decode()
    facts, out = ok(tmp_path, src)
    # the reference: ImageMagick (lcms) converting with the embedded profile to sRGB; for HEIC
    # libvips' icc_transform with the embedded profile (ImageMagick 6 ignores a HEIC's profile)
    ref_path = tmp_path / f"{name}-ref.png"
    if src.suffix == ".heic":
        pf.sh("vips", "icc_transform", src, tmp_path / "ref.v", "srgb", "--embedded", "--depth", "8")
        pf.sh("vips", "copy", tmp_path / "ref.v", ref_path)
    else:
        pf.sh("convert", src, "-profile", pf.SRGB_ICC, ref_path)
    ref = pf.read_pixels(ref_path, tmp_path)
    img = pf.read_pixels(out / "large.jpg", tmp_path)
    raw = pf.read_pixels(src, tmp_path)
    worst_ref = worst_src = raw_off = 0
    for i, colour in enumerate(pf.PATCHES):
        x, y = (i % 4) * pf.PATCH + pf.PATCH // 2, (i // 4) * pf.PATCH + pf.PATCH // 2
        got = pf.pixel_at(img, x, y)
        worst_ref = max(worst_ref, pf.delta_e(got, pf.pixel_at(ref, x, y)))
        worst_src = max(worst_src, pf.delta_e(got, colour))
        if len(raw[3]) == raw[0] * raw[1] * 3:
            raw_off = max(raw_off, pf.delta_e(pf.pixel_at(raw, x, y), colour))
    assert worst_ref < 3, worst_ref
    if name != "cmyk":  # the CMYK profile's gamut clips the blue patch: only the reference counts
        assert worst_src < 3, worst_src
        assert raw_off > 3, raw_off  # the fixture's own numbers are not sRGB: the test can fail


def test_cmyk_without_profile_and_progressive_decode(tmp_path, photos):
    plain = tmp_path / "plain-cmyk.jpg"
    pf.sh("convert", photos["big"], "-resize", "50%", "-colorspace", "CMYK", plain)
    assert "CMYK" in pf.sh("vipsheader", "-f", "interpretation", plain).stdout.decode()
    facts, out = ok(tmp_path, plain)
    assert pf.sh("vipsheader", "-f", "bands", out / "large.jpg").stdout.decode().strip() == "3"
    facts, out = ok(tmp_path, photos["progressive"])
    assert (facts["width"], facts["height"]) == (3000, 2000)


def test_png_alpha_webp_keeps_it_jpeg_flattens_on_white(tmp_path, photos):
    facts, out = ok(tmp_path, photos["alpha"])
    jpg = pf.read_pixels(out / "large.jpg", tmp_path)
    assert pf.delta_e(pf.pixel_at(jpg, 50, 50), (200, 30, 30)) < 5
    assert pf.delta_e(pf.pixel_at(jpg, 150, 50), (255, 255, 255)) < 3
    assert pf.sh("vipsheader", "-f", "bands", out / "large.webp").stdout.decode().strip() == "4"
    assert pf.alpha_at(out / "large.webp", 150, 50) == 0
    assert pf.alpha_at(out / "large.webp", 50, 50) == 255


def test_16bit_png_webp_and_gif_first_frame(tmp_path, photos):
    facts, out = ok(tmp_path, photos["png16"])
    assert facts["format"] == "png"
    px = pf.pixel_at(pf.read_pixels(out / "large.jpg", tmp_path), 30, 20)
    assert pf.delta_e(px, (0x80, 0x40, 0xc0)) < 3, px
    facts, out = ok(tmp_path, photos["webp"])
    assert (facts["format"], facts["width"], facts["height"]) == ("webp", 400, 200)
    facts, out = ok(tmp_path, photos["gif"])
    assert (facts["format"], facts["width"], facts["height"]) == ("gif", 120, 80)
    assert pf.delta_e(pf.pixel_at(pf.read_pixels(out / "large.jpg", tmp_path), 60, 40), (0xe0, 0x10, 0x10)) < 5


def test_variants_carry_no_metadata_and_the_original_is_untouched(tmp_path, photos):
    src = photos["gps"]
    before = hashlib.sha256(open(src, "rb").read()).hexdigest()
    tags = pf.sh("exiftool", "-G1", "-s", src).stdout.decode()
    for must in ("GPSLatitude", "DateTimeOriginal", "Creator", "Keywords", "Make"):
        assert must in tags  # the fixture has them: the test below can fail
    facts, out = ok(tmp_path, src)
    assert hashlib.sha256(open(src, "rb").read()).hexdigest() == before
    for name in VARIANTS:
        for fmt in ("jpg", "webp"):
            meta = pf.sh("exiftool", "-G1", "-s", "-a", out / f"{name}.{fmt}").stdout.decode()
            groups = {line.split("]")[0].strip("[ ") for line in meta.splitlines() if line.startswith("[")}
            assert groups <= {"ExifTool", "System", "File", "RIFF", "Composite", "JFIF"}, (name, fmt, meta)
            for word in ("GPS", "Exif", "XMP", "IPTC", "ICC", "Grandma", "family", "TestCam", "2021"):
                assert word not in meta.replace("ExifTool", ""), (name, fmt, word)


def test_facts_taken_at_and_location(tmp_path, photos):
    facts, _ = ok(tmp_path, photos["gps"])
    assert facts["taken_at"] == "2021-05-01T12:34:56+02:00"
    assert facts["has_location"] is True
    assert "location" not in facts
    facts, _ = ok(tmp_path, photos["gps"], env={"MEDIAEDGE_PHOTOS_KEEP_LOCATION": "true"})
    assert facts["location"]["lat"] == pytest.approx(51.5074, abs=1e-4)
    assert facts["location"]["lon"] == pytest.approx(-0.1278, abs=1e-4)
    facts, _ = ok(tmp_path, photos["big"])
    assert facts["taken_at"] is None and facts["has_location"] is False


@pytest.mark.parametrize("name,code", [("bomb", "too_large"), ("truncated", "corrupt"), ("corrupt", "corrupt"),
                                       ("svg", "unsupported_media_type"), ("pdf", "unsupported_media_type")])
def test_refusals(tmp_path, photos, name, code):
    rc, doc, out = variants(tmp_path, photos[name])
    assert rc == 1 and doc["error"] == code, doc
    assert os.listdir(out) == []


# runs argv[1:] as a child and writes its peak RSS (KiB) as stderr's last line
MAXRSS = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
print(os.wait4(pid, 0)[2].ru_maxrss, file=sys.stderr)
"""


def test_a_bomb_fails_fast_in_bounded_memory(tmp_path, photos):
    assert os.path.getsize(photos["bomb"]) < 512 * 1024
    out = tmp_path / "bomb-out"
    out.mkdir()
    # the peak RSS comes from a small python that forks it: a process's ru_maxrss counts the
    # memory of whatever exec'd it (Linux keeps the old image's high-water mark at exec), and
    # this one, pytest, grows to hundreds of MB over the suite
    p = subprocess.run(["/usr/bin/python3", "-c", MAXRSS, BIN, "photo-variants", str(photos["bomb"]), str(out)],
                       capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("MEDIAEDGE_")})
    doc = json.loads(p.stdout)
    maxrss = int(p.stderr.strip().splitlines()[-1])
    assert doc["error"] == "too_large" and "30000x30000" in doc["detail"], doc
    # refused from the header: far below the 900 MB that decoding it would take (KiB; under
    # ASan its shadow memory and quarantine add a few hundred MB, measured 445 MB once)
    assert maxrss < (700 if SANITIZED else 400) * 1024, maxrss


def test_configured_limits(tmp_path, photos):
    rc, doc, _ = variants(tmp_path, photos["big"], env={"MEDIAEDGE_PHOTOS_MAX_PIXELS": "5999999"})
    assert rc == 1 and doc["error"] == "too_large" and "max_pixels" in doc["detail"]
    rc, doc, _ = variants(tmp_path, photos["big"], env={"MEDIAEDGE_PHOTOS_MAX_PIXELS": "6000000"})
    assert rc == 0
    size = os.path.getsize(photos["big"])
    rc, doc, _ = variants(tmp_path, photos["big"], env={"MEDIAEDGE_PHOTOS_MAX_BYTES": str(size - 1)})
    assert rc == 1 and doc["error"] == "too_large" and "max_bytes" in doc["detail"]
    rc, doc, _ = variants(tmp_path, photos["big"], env={"MEDIAEDGE_PHOTOS_MAX_BYTES": str(size)})
    assert rc == 0


def test_webp_effort_reaches_the_encoder(tmp_path, photos):
    outputs = {}
    for effort in ("0", "6"):
        (tmp_path / effort).mkdir()
        rc, doc, out = variants(tmp_path / effort, photos["big"], env={"MEDIAEDGE_PHOTOS_WEBP_EFFORT": effort})
        assert rc == 0, doc
        outputs[effort] = (out / "large.webp").read_bytes()
        assert outputs[effort][8:12] == b"WEBP"
        assert (out / "large.jpg").read_bytes() == (tmp_path / "0" / f"out-{photos['big'].name}" / "large.jpg").read_bytes()
    assert outputs["0"] != outputs["6"]  # another effort, another encoding (sizes vary by picture)
