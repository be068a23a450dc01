"""The photo decoder processes (photos.sandbox): they hold no secret, are confined, and a
decoder that dies takes only its photo's attempt with it."""
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from test_processing import photo, server_with_hooks, wait_status, receiver  # noqa: F401 (fixture)
from test_roles import secret_in_memory
from test_uploads import Client

TOKEN_KEY = "tok-secret-decoder-0123456789abcdef-QRS"
HOOK_SECRET = "whsec-integration"  # test_processing's: the webhook signing key

pytestmark = pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert")


def decoders(server):
    """The pids of the server's photo-decoder children."""
    pids = []
    for task in os.listdir(f"/proc/{server.proc.pid}/task"):
        try:
            with open(f"/proc/{server.proc.pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[1:2] == [b"photo-decoder"]:
                    found.append(pid)
        except FileNotFoundError:
            continue
    return found


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_the_decoder_holds_no_secret_and_is_confined(make_server, receiver, tmp_path):  # noqa: F811
    key = tmp_path / "hs256.key"
    key.write_text(TOKEN_KEY + "\n")
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_TOKENS_HS256_SECRET_FILE=str(key),
                          MEDIAEDGE_JOBS_WORKERS="1")
    assert decoders(s) == []  # started with the first photo, not before
    _, r = Client(s).upload(photo(tmp_path))
    assert wait_status(s, r.headers["media-id"])["status"] == "ready"
    pid, = decoders(s)
    st = status_of(pid)
    assert st["Seccomp"].strip() == "2" and st["NoNewPrivs"].strip() == "1", st
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = f.read().split(b"\0")
    assert not [e for e in env if e.startswith(b"MEDIAEDGE_")], env
    assert secret_in_memory(s.proc.pid, HOOK_SECRET)  # the control: the server holds it
    for secret in (TOKEN_KEY, HOOK_SECRET):
        assert not secret_in_memory(pid, secret), "the decoder holds a secret"
    # a second photo goes to the same decoder
    _, r = Client(s).upload(photo(tmp_path, "q.jpg"))
    assert wait_status(s, r.headers["media-id"])["status"] == "ready"
    assert decoders(s) == [pid]


def test_a_decoder_killed_mid_photo_costs_one_attempt(make_server, receiver, tmp_path):  # noqa: F811
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_JOBS_WORKERS="1", MEDIAEDGE_JOBS_RETRY_AFTER="200ms")
    _, r = Client(s).upload(photo(tmp_path))  # a first photo starts the decoder
    assert wait_status(s, r.headers["media-id"])["status"] == "ready"
    pid, = decoders(s)
    big = photo(tmp_path, "big.jpg", "8000x6000")
    _, r = Client(s).upload(big)
    media_id = r.headers["media-id"]
    if wait_status(s, media_id, ("processing", "ready"))["status"] == "ready":
        pytest.skip("the photo was done before the test could kill its decoder")
    os.kill(pid, signal.SIGKILL)  # as a crash on a crafted file would
    m = wait_status(s, media_id, ("ready", "failed"), timeout=60)
    assert m["status"] == "ready", m
    assert s.proc.poll() is None  # the server never went down
    assert requests.get(s.http + "/healthz").status_code == 200
    assert decoders(s) and decoders(s) != [pid]  # a new decoder took over
    metrics = requests.get(s.http + "/metrics").text
    assert 'mediaedge_jobs_total{kind="photo",outcome="retry"} 1' in metrics


def test_without_the_sandbox_photos_are_decoded_in_process(make_server, receiver, tmp_path):  # noqa: F811
    s = server_with_hooks(make_server, receiver, MEDIAEDGE_PHOTOS_SANDBOX="false")
    _, r = Client(s).upload(photo(tmp_path))
    assert wait_status(s, r.headers["media-id"])["status"] == "ready"
    time.sleep(0.2)
    assert decoders(s) == []


def test_scratch_directories_of_dead_servers_are_swept(make_server, receiver, tmp_path):  # noqa: F811
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now
    stale = tmp / f"mediaedge-decoders-{gone.pid}"
    (stale / "0").mkdir(parents=True)
    (stale / "0" / "orcexec.leftover").write_bytes(b"x")
    alive = tmp / f"mediaedge-decoders-{os.getpid()}"  # this test's own pid: a live server's
    alive.mkdir()
    s = server_with_hooks(make_server, receiver, TMPDIR=str(tmp))
    mine = tmp / f"mediaedge-decoders-{s.proc.pid}"
    assert not stale.exists() and alive.exists()
    assert (mine / "0").is_dir()  # one directory per decoder
    s.proc.send_signal(signal.SIGTERM)  # a clean stop removes its own
    s.proc.wait(timeout=60)
    assert not mine.exists()
