"""The image, built and run as production runs it (a long suite: `make check-long`, ME_LONG=1).

A private docker daemon (tests/container/dockerd) builds deploy/Dockerfile on a Debian base made
with debootstrap when no registry is reachable (tests/container/base-images), then runs the
image read-only, as its non-root user, with every capability dropped and the file backend on a
named volume. Checked as an operator and a user would: a photo uploaded with tus-js-client
becomes ready; its decoder runs confined (its own seccomp filter stacked on Docker's: Seccomp 2
in its /proc status, inside the container); a variant comes through the origin with a signed
URL; an orphan left by `docker exec` is reaped by PID 1; `docker stop` drains and exits 0; a
new container on the same volume still serves the media. Build time, image size and
start-to-ready time go to <builddir>/container-report.json and the summary (no timed
assertion: figures, not verdicts).

Needs root (dockerd, debootstrap), docker.io and debootstrap (installed with apt-get when
missing), node with tests/integration/node's packages (./bootstrap check installs them)."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
SRCDIR = Path(os.environ.get("ME_SRCDIR", HERE.parents[1])).resolve()
NODE_DIR = SRCDIR / "tests" / "integration" / "node"
NODE = shutil.which("node")
DOCKER = "/usr/bin/docker"
IMAGE = "mediaedge:container-test"
REPORT = Path(os.environ.get("ME_BIN", SRCDIR / "build" / "mediaedge")).resolve().parent / "container-report.json"
MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(os.environ.get("ME_LONG") != "1", reason="long: make check-long (ME_LONG=1)")

figures = {}


def report(**kw):
    figures.update(kw)
    REPORT.write_text(json.dumps(figures, indent=1) + "\n")


def sh(*args, env=None, check=True, timeout=900, **kw):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def ensure_packages():
    missing = [p for p in ("docker.io", "debootstrap", "iptables")
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True).stdout.find("install ok installed") < 0]
    if missing:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Docker:
    def __init__(self, host):
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="1")

    def __call__(self, *args, **kw):
        return sh(DOCKER, *args, env=self.env, **kw)

    def inspect(self, what, fmt):
        return json.loads(self("inspect", "--format", "{{json " + fmt + "}}", what).stdout)


@pytest.fixture(scope="module")
def docker():
    if os.geteuid() != 0:
        pytest.skip("needs root: a private dockerd, debootstrap")
    if NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir():
        pytest.skip("needs node and tus-js-client: npm ci --prefix tests/integration/node")
    ensure_packages()
    # short: the daemon's socket path must fit a sockaddr_un
    root = tempfile.mkdtemp(prefix="me-dk-", dir="/var/tmp")
    try:
        out = sh(HERE / "dockerd", "start", root).stdout.strip()
        d = Docker(out.split("=", 1)[1])
        t0 = time.monotonic()
        sh(HERE / "base-images", env=d.env)
        report(base_images_seconds=round(time.monotonic() - t0, 1))
        t0 = time.monotonic()
        d("build", "--network", "host", "-f", SRCDIR / "deploy" / "Dockerfile", "-t", IMAGE,
          "--build-arg", "REVISION=test", SRCDIR, timeout=1800)
        report(build_seconds=round(time.monotonic() - t0, 1),
               image_bytes=d.inspect(IMAGE, ".Size"),
               image_mb=round(d.inspect(IMAGE, ".Size") / 1e6, 1))
        yield d
    finally:
        sh(HERE / "dockerd", "stop", root, check=False)


class Container:
    """One mediaedge container as production runs it, on loopback ports of its own."""

    def __init__(self, d, volume, name=None):
        self.d, self.volume = d, volume
        self.name = name or "me-" + uuid.uuid4().hex[:10]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self):
        t0 = time.monotonic()
        self.d("run", "-d", "--name", self.name, "--network", "host", "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--stop-timeout", "40",
               "--health-interval", "1s", "--memory", "2g", "--cpus", "2",
               "-v", f"{self.volume}:/var/lib/mediaedge/storage",
               "-e", f"MEDIAEDGE_LISTEN_HTTP=127.0.0.1:{self.port}", "-e", "MEDIAEDGE_LISTEN_HTTPS=",
               IMAGE)
        self.ready_seconds = self.wait_ready(t0)
        return self

    def wait_ready(self, t0, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except requests.ConnectionError:
                pass
            if self.d.inspect(self.name, ".State.Status") not in ("created", "running"):
                break
            time.sleep(0.01)
        raise AssertionError("not ready: " + self.logs()[-3000:])

    def exec(self, *args, **kw):
        return self.d("exec", self.name, *args, **kw)

    def logs(self):
        p = self.d("logs", self.name, check=False)
        return p.stdout + p.stderr

    def log_lines(self):
        return [json.loads(l) for l in self.logs().splitlines() if l.startswith("{")]

    def token(self, scope, user="u1", album="album-1"):
        return self.exec("mediaedge", "token", "--scope", scope, "--user", user, "--album", album,
                         "--plan", "premium").stdout.strip()

    def remove(self):
        self.d("rm", "-f", "-v", self.name, check=False)


def proc_status(c, pid):
    out = c.exec("cat", f"/proc/{pid}/status").stdout
    return dict(l.split(":\t", 1) for l in out.splitlines() if ":\t" in l)


def decoder_pids(c):
    """The photo decoders running in the container (their /proc/<pid>/cmdline)."""
    out = c.exec("sh", "-c", "for d in /proc/[0-9]*; do tr '\\0' ' ' <$d/cmdline 2>/dev/null | "
                 "grep -q '^mediaedge photo-decoder' && echo ${d#/proc/}; done", check=False).stdout
    return [int(p) for p in out.split()]


def zombies(c):
    out = c.exec("sh", "-c", "grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null; true").stdout
    return out.split()


def wait_media(c, media_id, token, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{c.url}/v1/media/{media_id}", headers={"Authorization": "Bearer " + token}, timeout=5)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("ready", "failed"):
            return r.json()
        time.sleep(0.1)
    raise AssertionError("media not processed: " + c.logs()[-3000:])


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    sh("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=2400x1800", "-frames:v", "1",
       "-q:v", "3", path)
    return path


def test_the_image_is_lean_non_root_and_says_how_to_run_it(docker):
    cfg = docker.inspect(IMAGE, ".Config")
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["/usr/bin/mediaedge"] and cfg["Cmd"] == ["serve"]  # exec form: PID 1
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/usr/lib/mediaedge/healthcheck"]
    assert set(cfg["Volumes"]) == {"/var/lib/mediaedge/scratch", "/var/lib/mediaedge/storage"}
    for label in ("title", "version", "revision", "created", "description", "base.name"):
        assert f"org.opencontainers.image.{label}" in cfg["Labels"], label
    assert cfg["Labels"]["org.opencontainers.image.revision"] == "test"
    # no compiler, no headers, no package that nothing loads; every library the binary needs
    p = docker("run", "--rm", "--entrypoint", "sh", IMAGE, "-c",
               "command -v gcc cc make; ls /usr/include 2>/dev/null | wc -l; "
               "dpkg-query -W -f='${Package}\\n' | grep -cE '^(libmagickcore|libpoppler[0-9]|libopenslide)'; "
               "ldd /usr/bin/mediaedge | grep -c 'not found'; "
               "find /usr/share/man /usr/share/locale /usr/share/info -type f 2>/dev/null | wc -l; "
               "ls /usr/lib/x86_64-linux-gnu/libmfxhw64.so.1 2>/dev/null | wc -l", check=False)
    # no gcc/cc/make line, no headers, no ImageMagick/poppler/OpenSlide, every library found,
    # no manual or translation, no Intel media SDK runtime
    assert p.stdout.split() == ["0", "0", "0", "0", "0"], p.stdout
    # a regression guard on the size, not the 250 MB goal: what the trimming reached, with room
    assert figures["image_bytes"] < 340e6, figures


def test_upload_ready_confined_delivered_drained_and_kept(docker, photo):
    volume = "me-media-" + uuid.uuid4().hex[:8]
    docker("volume", "create", volume)
    first = second = None
    try:
        first = Container(docker, volume).run()
        report(run_to_ready_seconds=round(first.ready_seconds, 3))
        # process start to ready, from the daemon's start time and the server's own log
        started = docker.inspect(first.name, ".State.StartedAt")
        serving = next(l for l in first.log_lines() if l.get("msg", "").startswith("serving:"))
        report(start_to_serving_seconds=round(iso(serving["ts"]) - iso(started), 3))

        pid1 = proc_status(first, 1)
        assert pid1["Name"] == "mediaedge" and pid1["Uid"].split()[0] == "10001", pid1
        assert int(pid1["CapEff"], 16) == 0, pid1
        # read-only: nothing outside the two volumes can be written
        assert first.exec("touch", "/tmp/x", check=False).returncode != 0
        assert first.exec("touch", "/var/lib/mediaedge/x", check=False).returncode != 0
        assert first.exec("touch", "/var/lib/mediaedge/scratch/x").returncode == 0

        # the image's HEALTHCHECK turns healthy
        deadline = time.monotonic() + 30
        while docker.inspect(first.name, ".State.Health.Status") != "healthy" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert docker.inspect(first.name, ".State.Health.Status") == "healthy", first.logs()[-2000:]

        # a photo, uploaded as the apps do (tus-js-client, chunked)
        upload_token = first.token("upload")
        view_token = first.token("view")
        p = subprocess.run([NODE, "upload.mjs", first.url + "/v1/uploads", upload_token, str(photo),
                            str(1 * MiB), "--timeout-s", "60"], cwd=NODE_DIR, capture_output=True, text=True,
                           timeout=90)
        res = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
        assert p.returncode == 0 and res["ok"], (res, p.stderr[-2000:])
        media = wait_media(first, res["mediaId"], view_token)
        assert media["status"] == "ready", media
        assert media["width"] == 2400 and media["height"] == 1800, media

        # its decoder: a child of PID 1, as the same user, with its own seccomp filter on top of
        # Docker's (Seccomp 2, one filter more than PID 1), no new privileges, no capability
        pids = decoder_pids(first)
        assert pids, "no photo decoder running: " + first.logs()[-2000:]
        st = proc_status(first, pids[0])
        assert st["Seccomp"] == "2", st
        assert int(st["Seccomp_filters"]) > int(pid1.get("Seccomp_filters", "0")), (st, pid1)
        assert st["NoNewPrivs"] == "1" and st["PPid"] == "1" and st["Uid"].split()[0] == "10001", st
        assert int(st["CapEff"], 16) == 0, st
        landlock = [l["msg"] for l in first.log_lines() if "Landlock" in l.get("msg", "")]
        report(decoder_seccomp=st["Seccomp"], decoder_seccomp_filters=int(st["Seccomp_filters"]),
               pid1_seccomp_filters=int(pid1.get("Seccomp_filters", "0")),
               landlock=landlock[0] if landlock else "on (no warning from the decoder)")
        assert not landlock, landlock  # Docker's default profile allows Landlock's three calls

        # a variant through the origin, with the signed URL the media API gave
        thumb = media["variants"]["thumb.jpg"]
        r = requests.get(thumb["url"], timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
        assert len(r.content) == thumb["bytes"]
        assert requests.get(thumb["url"].replace("Signature=", "Signature=x"), timeout=10).status_code == 403
        thumb_sha = hashlib.sha256(r.content).hexdigest()

        # an orphan: `docker exec` leaves a process behind, which becomes PID 1's child; its
        # exit must not leave a zombie
        first.exec("sh", "-c", "sleep 0.3 & exit 0")
        deadline = time.monotonic() + 10
        while zombies(first) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert zombies(first) == [], first.exec("sh", "-c", "grep -H . /proc/[0-9]*/stat").stdout

        # docker stop: SIGTERM to PID 1, the drain, exit 0 (not the SIGKILL after the timeout)
        t0 = time.monotonic()
        docker("stop", first.name, timeout=60)
        report(stop_seconds=round(time.monotonic() - t0, 1))
        assert docker.inspect(first.name, ".State.ExitCode") == 0, first.logs()[-3000:]
        msgs = [l.get("msg", "") for l in first.log_lines()]
        assert any(m.startswith("shutdown signal") for m in msgs) and "drained; exiting" in msgs, msgs[-10:]
        assert not any(l.get("level") == "error" for l in first.log_lines()), first.logs()[-3000:]

        # a new container on the same volume: the media, its variants, all still there
        second = Container(docker, volume).run()
        report(second_run_to_ready_seconds=round(second.ready_seconds, 3))
        again = wait_media(second, res["mediaId"], second.token("view"))
        assert again["status"] == "ready" and set(again["variants"]) == set(media["variants"])
        r = requests.get(again["variants"]["thumb.jpg"]["url"], timeout=10)
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == thumb_sha
    finally:
        for c in (first, second):
            if c is not None:
                c.remove()
        docker("volume", "rm", "-f", volume, check=False)


def iso(ts):
    """Seconds since the epoch of an RFC 3339 time with up to nanoseconds (Docker's, ours)."""
    from datetime import datetime, timezone
    main, _, frac = ts.rstrip("Z").partition(".")
    t = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)
