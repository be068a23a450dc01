"""tus 1.0 uploads at /v1/uploads driven by the real client the apps use: tus-js-client under
Node (tests/integration/node/upload.mjs, installed by `./bootstrap check` with npm ci).

Checks what a user would notice: the stored original is byte for byte the file, the manifest
says who uploaded what, and an upload interrupted by kill -9 (of the app, of the server)
resumes where the server stopped instead of starting over."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

MiB = 1024 * 1024
NODE_DIR = Path(__file__).resolve().parent / "node"
UPLOAD_JS = NODE_DIR / "upload.mjs"
NODE = shutil.which("node")
JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00"

pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir(),
    reason="needs node and tus-js-client: npm ci --prefix tests/integration/node")


def j(obj):
    """An assertion message that pytest does not shorten."""
    return json.dumps(obj, default=str)


def make_jpeg(path, size):
    """A file that starts like a JPEG, then random bytes; returns its SHA-256 (hex)."""
    data = JPEG_HEAD + os.urandom(size - len(JPEG_HEAD))
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def tus_server(make_server, max_patch="1MiB"):
    return make_server(env={"MEDIAEDGE_HTTP_MAX_PATCH_SIZE": max_patch}).start()


def upload_token(server, user, album):
    return server.token("--scope", "upload", "--user", user, "--album", album)


def node_args(server, token, path, chunk, *extra, timeout=40):
    return [NODE, str(UPLOAD_JS), server.http + "/v1/uploads", token, str(path), str(chunk),
            "--timeout-s", str(timeout), *extra]


def parse_result(p_stdout, p_stderr, rc):
    lines = [l for l in p_stdout.splitlines() if l.startswith("{")]
    assert lines, f"upload.mjs printed no result (exit {rc}): {p_stdout[-2000:]} {p_stderr[-2000:]}"
    res = json.loads(lines[-1])
    res["exit"] = rc
    res["stderr"] = p_stderr[-2000:]
    return res


def run_upload(server, token, path, chunk=MiB, *extra, timeout=40):
    """Runs upload.mjs to its end; returns its JSON result plus "exit" and "stderr"."""
    p = subprocess.run(node_args(server, token, path, chunk, *extra, timeout=timeout),
                       capture_output=True, text=True, timeout=timeout + 10, cwd=NODE_DIR)
    return parse_result(p.stdout, p.stderr, p.returncode)


def head(url, token):
    return requests.head(url, headers={"Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0"},
                         timeout=5)


def storage(server):
    return Path(server.dir) / "var" / "storage"


def check_stored(server, res, sha, size, user, album, wait=5):
    """The original is stored byte for byte and the manifest is right for this upload."""
    assert res["ok"] and res["exit"] == 0, j(res)
    media_id = res["mediaId"]
    assert media_id, f"no Media-Id header on the last PATCH response: {res}"
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", media_id) and media_id not in (".", ".."), media_id
    original = storage(server) / "originals" / album / media_id
    manifest = storage(server) / "media" / f"{media_id}.json"
    deadline = time.time() + wait
    while not (original.exists() and manifest.exists()) and time.time() < deadline:
        time.sleep(0.05)
    assert original.is_file(), f"{original} missing; storage has {sorted(str(p) for p in storage(server).rglob('*'))[:50]}"
    assert original.stat().st_size == size
    h = hashlib.sha256()
    with open(original, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    assert h.hexdigest() == sha, f"stored original of {media_id} differs from the uploaded file"
    assert manifest.is_file(), f"{manifest} missing"
    m = json.loads(manifest.read_text())
    assert m.get("status") == "uploaded", j(m)
    assert m["original"].get("bytes") == size, j(m)
    assert m["original"].get("sha256") == sha, j(m)
    assert m.get("owner") == user, j(m)
    assert m.get("album") == album, j(m)
    return media_id


def kill9_and_restart(server):
    """SIGKILL the server, then start it again on the same ports and data directory."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.proc.stdout.close()
    server.log.close()
    server.start()


def test_whole_upload_in_1mib_chunks(make_server, tmp_path):
    server = tus_server(make_server)
    size = 5 * MiB + 12345  # the last chunk is a short one
    path = tmp_path / "holiday.jpg"
    sha = make_jpeg(path, size)
    token = upload_token(server, "u-1", "fam_1")

    res = run_upload(server, token, path, MiB)

    assert res["ok"] and res["exit"] == 0, j(res)
    assert res["url"].startswith(server.http + "/v1/uploads/"), res["url"]
    assert res["bytesSent"] == size and res["bytesAcked"] == size and res["retries"] == 0, j(res)
    assert res["patches"] == 6, j(res)  # 5 full chunks and the rest
    check_stored(server, res, sha, size, "u-1", "fam_1")


def test_resume_after_app_and_server_kill9(make_server, tmp_path):
    """The app dies after 3 MiB, the server is kill -9'd and restarted: a new app process
    resumes the same upload from the URL it stored, sending only the rest."""
    server = tus_server(make_server)
    size = 8 * MiB
    path = tmp_path / "video.jpg"
    sha = make_jpeg(path, size)
    urls = tmp_path / "tus-urls.json"
    token = upload_token(server, "u-2", "fam_2")

    first = run_upload(server, token, path, MiB, "--url-storage", str(urls), "--stop-after-bytes", str(3 * MiB))
    assert first["exit"] == 3 and first.get("stopped"), j(first)
    acked = first["offset"]
    assert acked == 3 * MiB, j(first)
    r = head(first["url"], token)
    assert r.status_code in (200, 204), (r.status_code, dict(r.headers), r.text)
    assert int(r.headers["Upload-Offset"]) == acked, dict(r.headers)
    assert int(r.headers["Upload-Length"]) == size, dict(r.headers)

    kill9_and_restart(server)
    r = head(first["url"], token)
    assert r.status_code in (200, 204), f"HEAD after restart: {r.status_code} {dict(r.headers)} {r.text}"
    after = int(r.headers["Upload-Offset"])
    assert 0 < after <= acked, f"offset after kill -9 and restart: {after}, acknowledged before: {acked}"

    second = run_upload(server, token, path, MiB, "--url-storage", str(urls), "--resume-from-previous")
    assert second["ok"] and second["exit"] == 0, j(second)
    assert second["resumed"] and second["url"] == first["url"], j(second)
    assert second["startOffset"] == after, j(second)
    assert second["bytesSent"] <= size - acked + MiB, j(second)  # the rest, never the whole file
    assert second["bytesSent"] == size - after, j(second)
    check_stored(server, second, sha, size, "u-2", "fam_2")


@pytest.mark.parametrize("protocol,interop", [("ietf-draft-03", "5"), ("ietf-draft-05", "6")])
def test_ietf_draft_upload_resumes_after_the_app_dies(make_server, tmp_path, protocol, interop):
    """tus-js-client speaking the IETF resumable-upload draft: the app dies after 2 MiB, a new
    process asks the upload's offset with HEAD and sends only the rest."""
    server = tus_server(make_server)
    size = 4 * MiB + 777
    path = tmp_path / "draft.jpg"
    sha = make_jpeg(path, size)
    urls = tmp_path / "tus-urls.json"
    token = upload_token(server, "u-5", "fam_5")

    first = run_upload(server, token, path, MiB, "--protocol", protocol, "--url-storage", str(urls),
                       "--stop-after-bytes", str(2 * MiB))
    assert first["exit"] == 3 and first.get("stopped") and first["offset"] == 2 * MiB, j(first)
    r = requests.head(first["url"], headers={"Authorization": "Bearer " + token,
                                             "Upload-Draft-Interop-Version": interop}, timeout=5)
    assert r.status_code == 204, (r.status_code, dict(r.headers))
    assert r.headers["Upload-Offset"] == str(2 * MiB) and r.headers["Upload-Complete"] == "?0", dict(r.headers)
    assert r.headers["Upload-Draft-Interop-Version"] == interop and "Tus-Resumable" not in r.headers
    assert f"max-append-size={MiB}" in r.headers["Upload-Limit"], r.headers["Upload-Limit"]

    second = run_upload(server, token, path, MiB, "--protocol", protocol, "--url-storage", str(urls),
                        "--resume-from-previous")
    assert second["resumed"] and second["url"] == first["url"], j(second)
    assert second["startOffset"] == 2 * MiB and second["bytesSent"] == size - 2 * MiB, j(second)
    check_stored(server, second, sha, size, "u-5", "fam_5")


def test_resume_after_server_kill9_mid_upload(make_server, tmp_path):
    """The server is kill -9'd while a slow app is uploading; the app fails, is started again
    after the server is back, and completes from the server's offset."""
    server = tus_server(make_server)
    size = 8 * MiB + 777
    path = tmp_path / "clip.jpg"
    sha = make_jpeg(path, size)
    urls = tmp_path / "tus-urls.json"
    token = upload_token(server, "u-3", "fam_3")

    proc = subprocess.Popen(node_args(server, token, path, MiB, "--url-storage", str(urls), "--delay-ms", "400"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=NODE_DIR)
    try:
        url, offset, deadline = None, 0, time.time() + 20
        while time.time() < deadline and proc.poll() is None:
            if url is None and urls.exists():
                try:
                    url = next(iter(json.loads(urls.read_text()).values()))["uploadUrl"]
                except (ValueError, StopIteration, KeyError):
                    pass  # being written
            if url is not None:
                r = head(url, token)
                assert r.status_code in (200, 204), (r.status_code, dict(r.headers), r.text)
                offset = int(r.headers["Upload-Offset"])
                if offset > 0:
                    break
            time.sleep(0.05)
        assert proc.poll() is None and url is not None and 0 < offset < size, \
            f"upload not in progress: exit {proc.poll()}, url {url}, offset {offset}"
        server.proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    first = parse_result(out, err, proc.returncode)
    assert not first["ok"] and first["exit"] == 1, j(first)  # the app noticed the server died
    acked = first["offset"] or 0
    assert acked < size, j(first)

    server.proc.wait(timeout=10)
    server.proc.stdout.close()
    server.log.close()
    server.start()

    second = run_upload(server, token, path, MiB, "--url-storage", str(urls), "--resume-from-previous")
    assert second["ok"] and second["exit"] == 0, j(second)
    assert second["resumed"] and second["url"] == url, j(second)
    assert second["startOffset"] > 0, j(second)  # resumed, not restarted
    assert second["bytesSent"] <= size - acked + MiB, j(second)
    assert second["bytesSent"] == size - second["startOffset"], j(second)
    check_stored(server, second, sha, size, "u-3", "fam_3")


def test_20_concurrent_uploads(make_server, tmp_path):
    server = tus_server(make_server)
    uploads = []
    for i in range(20):
        size = 2 * MiB + (i * 52429) % MiB  # 2 to 3 MiB
        path = tmp_path / f"photo{i:02d}.jpg"
        user, album = f"u{i % 5}", f"album_{i % 3}"
        uploads.append((path, size, make_jpeg(path, size), user, album, upload_token(server, user, album)))

    procs = [subprocess.Popen(node_args(server, token, path, MiB, timeout=45), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=NODE_DIR)
             for path, _, _, _, _, token in uploads]
    results, deadline = [], time.time() + 50
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline - time.time()))
            results.append(parse_result(out, err, p.returncode))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()

    failed = [(u[0].name, r) for u, r in zip(uploads, results) if not r["ok"]]
    assert not failed, f"{len(failed)} of 20 uploads failed: {j(failed[:3])}"
    ids = [check_stored(server, r, sha, size, user, album)
           for (path, size, sha, user, album, _), r in zip(uploads, results)]
    assert len(set(ids)) == 20, j(ids)
    assert len({r["url"] for r in results}) == 20
