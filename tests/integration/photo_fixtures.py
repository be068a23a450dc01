"""photo_fixtures.py: photos made at test time with Debian's tools (vips, exiftool, heif-enc,
ImageMagick) and small pure-Python writers (PNG, PPM), and the pixel and colour helpers that
check what mediaedge made of them. Nothing here is committed as binary."""
import math
import os
import struct
import subprocess
import zlib

# The upright picture every orientation fixture must come back to: four quadrants of
# distinct colours, so that each of the 8 EXIF orientations gives a different arrangement.
QUADRANTS = {"tl": (220, 30, 30), "tr": (30, 200, 30), "bl": (30, 30, 220), "br": (230, 220, 40)}

# Colour patches inside the sRGB gamut (and inside Adobe RGB, Display P3 and the CMYK
# default's gamut), 100x100 each, 4 per row.
PATCHES = [(200, 40, 40), (40, 160, 60), (50, 70, 200), (230, 200, 50),
           (128, 128, 128), (225, 170, 140), (60, 60, 60), (235, 235, 235)]
PATCH = 100

SRGB_ICC = "/usr/share/color/icc/sRGB.icc"
ADOBE_ICC = "/usr/share/color/icc/compatibleWithAdobeRGB1998.icc"

# One empty page (the xref offsets are not checked by anything here: only the first bytes are).
MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
               b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
               b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 50 50]>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw)


# ---- writers ----

def write_ppm(path, w, h, pixel):
    """pixel(x, y) -> (r, g, b), 8-bit."""
    rows = bytearray()
    for y in range(h):
        for x in range(w):
            rows += bytes(pixel(x, y))
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h) + bytes(rows))


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def write_png(path, w, h, depth, colour_type, rows):
    """rows: an iterable of raw scanlines (without the filter byte)."""
    z = zlib.compressobj(9)
    idat = bytearray()
    for row in rows:
        idat += z.compress(b"\0" + row)
    idat += z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0))
                + _chunk(b"IDAT", bytes(idat)) + _chunk(b"IEND", b""))


def quadrant_pixel(w, h):
    def pixel(x, y):
        return QUADRANTS[("t" if y < h // 2 else "b") + ("l" if x < w // 2 else "r")]
    return pixel


def patch_pixel(x, y):
    return PATCHES[(y // PATCH) * 4 + x // PATCH]


# ---- orientation: stored pixels such that applying EXIF orientation o gives the upright U ----

# The inverse of each orientation's display transform, as vips operations on U.
UNDO = {1: [], 2: [("flip", "horizontal")], 3: [("rot", "d180")], 4: [("flip", "vertical")],
        5: [("rot", "d90"), ("flip", "horizontal")],  # transpose is its own inverse
        6: [("rot", "d270")], 7: [("rot", "d90"), ("flip", "vertical")], 8: [("rot", "d90")]}


def stored_for(upright, orientation, out):
    src = upright
    for i, (op, arg) in enumerate(UNDO[orientation]):
        dst = f"{out}.step{i}.v"
        sh("vips", op, src, dst, arg)
        src = dst
    sh("vips", "copy", src, f"{out}[Q=95]")


# ---- HEIF: add an irot (rotation) property to the primary item ----

def _boxes(data, start, end):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8 or pos + size > end:
            raise ValueError("bad box")
        yield kind.decode("latin1"), pos, size
        pos += size


def heif_add_irot(path, angle):
    """Rewrites the HEIF at path so that its primary item carries irot (angle x 90 degrees
    anti-clockwise), as iPhones write it. Adjusts box sizes and the iloc offsets that the
    growth of the meta box moves."""
    data = bytearray(open(path, "rb").read())
    meta = next((p, s) for k, p, s in _boxes(data, 0, len(data)) if k == "meta")
    mstart, msize = meta
    inner = {k: (p, s) for k, p, s in _boxes(data, mstart + 12, mstart + msize)}
    pitm_p = inner["pitm"][0]
    primary = struct.unpack(">H", data[pitm_p + 12:pitm_p + 14])[0]
    iprp_p, iprp_s = inner["iprp"]
    props = {k: (p, s) for k, p, s in _boxes(data, iprp_p + 8, iprp_p + iprp_s)}
    ipco_p, ipco_s = props["ipco"]
    nprops = sum(1 for _ in _boxes(data, ipco_p + 8, ipco_p + ipco_s))
    irot = struct.pack(">I4sB", 9, b"irot", angle & 3)
    # ipma: version/flags, entry_count, entries of (item_ID, n, associations)
    ipma_p, ipma_s = props["ipma"]
    version, flags = data[ipma_p + 8], int.from_bytes(data[ipma_p + 9:ipma_p + 12], "big")
    q = ipma_p + 16
    idlen, assoclen = (2 if version < 1 else 4), (2 if flags & 1 else 1)
    new_assoc = ((0x8000 | (nprops + 1)) if assoclen == 2 else (0x80 | (nprops + 1))).to_bytes(assoclen, "big")
    for _ in range(struct.unpack(">I", data[ipma_p + 12:ipma_p + 16])[0]):
        item = int.from_bytes(data[q:q + idlen], "big")
        n = data[q + idlen]
        if item == primary:
            data[q + idlen] = n + 1
            insert_at = q + idlen + 1 + n * assoclen
            break
        q += idlen + 1 + n * assoclen
    else:
        raise ValueError("primary item has no ipma entry")
    delta = len(irot) + assoclen
    # iloc offsets (construction method 0: file offsets) move by delta; iloc keeps its size
    iloc_p = inner["iloc"][0]
    v = data[iloc_p + 8]
    off_size, len_size = data[iloc_p + 12] >> 4, data[iloc_p + 12] & 15
    base_size, idx_size = data[iloc_p + 13] >> 4, (data[iloc_p + 13] & 15) if v else 0
    q = iloc_p + 14
    count_len = 2 if v < 2 else 4
    count = int.from_bytes(data[q:q + count_len], "big")
    q += count_len
    for _ in range(count):
        q += 2 if v < 2 else 4
        method = 0
        if v in (1, 2):
            method = int.from_bytes(data[q:q + 2], "big") & 15
            q += 2
        q += 2  # data_reference_index
        base = int.from_bytes(data[q:q + base_size], "big") if base_size else 0
        if base_size and method == 0:
            data[q:q + base_size] = (base + delta).to_bytes(base_size, "big")
        q += base_size
        extents = int.from_bytes(data[q:q + 2], "big")
        q += 2
        for _ in range(extents):
            q += idx_size
            off = int.from_bytes(data[q:q + off_size], "big") if off_size else 0
            if off_size and not base_size and method == 0:
                data[q:q + off_size] = (off + delta).to_bytes(off_size, "big")
            q += off_size + len_size
    # insert (the later position first), then grow the enclosing boxes
    data[insert_at:insert_at] = new_assoc
    data[ipco_p + ipco_s:ipco_p + ipco_s] = irot
    for p, grow in ((ipma_p + len(irot), assoclen), (ipco_p, len(irot)), (iprp_p, delta), (mstart, delta)):
        size = struct.unpack(">I", data[p:p + 4])[0]
        data[p:p + 4] = struct.pack(">I", size + grow)
    open(path, "wb").write(bytes(data))


# ---- reading results ----

def read_pixels(path, tmpdir):
    """(width, height, bands, bytes) of an image file, decoded by vips to 8-bit PPM/PGM (alpha
    read separately)."""
    base = os.path.join(str(tmpdir), os.path.basename(str(path)))
    hdr = sh("vipsheader", "-f", "bands", path).stdout.decode().strip()
    bands = int(hdr)
    sh("vips", "extract_band", path, base + ".ppm", "0", "--n", "3" if bands >= 3 else "1")
    raw = open(base + ".ppm", "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments in between
        while raw[pos:pos + 1].isspace():
            pos += 1
        if raw[pos:pos + 1] == b"#":
            pos = raw.index(b"\n", pos) + 1
            continue
        end = pos
        while not raw[end:end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    w, h = int(fields[1]), int(fields[2])
    return w, h, bands, raw[pos + 1:]


def pixel_at(img, x, y):
    w, h, bands, data = img
    n = 3 if bands >= 3 else 1
    i = (y * w + x) * n
    return tuple(data[i:i + n])


def alpha_at(path, x, y):
    out = sh("vips", "getpoint", path, str(x), str(y)).stdout.decode().split()
    return float(out[-1])


def _lab(rgb):
    def lin(c):
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def delta_e(a, b):
    """CIE 1976 colour difference of two 8-bit sRGB colours."""
    return math.dist(_lab(a), _lab(b))
