"""Roles: `api` takes uploads and queues their jobs, `worker` processes them and holds no
token key (it decodes files from anyone), on the same storage."""
import re
import shutil
import time

import pytest
import requests

from test_processing import manifest, photo, wait_status
from test_uploads import Client

SECRET = "tok-secret-0123456789abcdef-XYZ-9876543210"  # unusual: found in memory only if there

pytestmark = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")


def secret_in_memory(pid, secret):
    """Whether secret's bytes are anywhere in the readable memory of pid (root reads it)."""
    needle = secret.encode()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if not m or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if end - start > 1 << 30:  # ASan's shadow memory: reserved, not where strings live
                continue
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def test_api_uploads_worker_processes_and_holds_no_token_key(make_server, tmp_path):
    key = tmp_path / "hs256.key"
    key.write_text(SECRET + "\n")
    env = {"MEDIAEDGE_TOKENS_HS256_SECRET_FILE": str(key)}
    api = make_server(env={**env, "MEDIAEDGE_SERVER_ROLE": "api"}).start()
    _, r = Client(api).upload(photo(tmp_path))
    media_id = r.headers["media-id"]
    time.sleep(0.5)
    assert manifest(api, media_id)["status"] == "uploaded"  # api pods do not process
    assert secret_in_memory(api.proc.pid, SECRET)  # the control: this scan finds a key that is there
    api.stop()

    worker = make_server(env={**env, "MEDIAEDGE_SERVER_ROLE": "worker"})
    worker.dir, worker.env["MEDIAEDGE_SERVER_DATA_DIR"] = api.dir, api.env["MEDIAEDGE_SERVER_DATA_DIR"]
    worker.env["MEDIAEDGE_STORAGE_ROOT"] = api.env["MEDIAEDGE_STORAGE_ROOT"]
    worker.start()
    assert wait_status(worker, media_id, ("ready",))["variants"]["thumb.jpg"]["width"] == 320
    assert requests.get(worker.http + "/healthz").status_code == 200
    for path in ("/v1/uploads", "/v1/whoami"):
        assert requests.post(worker.http + path).status_code == 404, path
    assert not secret_in_memory(worker.proc.pid, SECRET)
