"""conftest.py: starts the real mediaedge binary on free loopback ports with a temp data dir."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests
import urllib3

import swift_s3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

BIN = os.environ.get("ME_BIN", os.path.join(os.path.dirname(__file__), "../../build/mediaedge"))
SRCDIR = os.environ.get("ME_SRCDIR", os.path.join(os.path.dirname(__file__), "../.."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One mediaedge process. env: extra MEDIAEDGE_* variables; config: YAML text or None."""

    def __init__(self, tmp_path, env=None, config=None, args=(), s3=None):
        self.dir = tmp_path
        self.http_port, self.https_port = free_port(), free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.https = f"https://127.0.0.1:{self.https_port}"
        self.log_path = tmp_path / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAEDGE_")}
        self.env.update({
            "MEDIAEDGE_LISTEN_HTTP": f"127.0.0.1:{self.http_port}",
            "MEDIAEDGE_LISTEN_HTTPS": f"127.0.0.1:{self.https_port}",
            "MEDIAEDGE_SERVER_DATA_DIR": str(tmp_path / "var"),
            "MEDIAEDGE_STORAGE_ROOT": str(tmp_path / "var" / "storage"),
            "MEDIAEDGE_SERVER_THREADS": "2",
            # uploads alone: tests of processing (test_processing.py) ask for role all
            "MEDIAEDGE_SERVER_ROLE": "api",
            "MEDIAEDGE_SHUTDOWN_DELAY": "0",
            "MEDIAEDGE_SHUTDOWN_DRAIN_TIMEOUT": "10s",
        })
        # storage: the file backend's directory, or (s3: the session's Swift) a new bucket
        self.storage = swift_s3.FileStorage(tmp_path / "var" / "storage")
        if s3 is not None:
            s3_env, self.storage = swift_s3.server_env(s3, tmp_path)
            self.env.update(s3_env)
            # its certificate is a file, so its own URLs would be https://: keep them plain, as on file
            self.env["MEDIAEDGE_CDN_BASE_URL"] = self.http
        self.backend = "s3" if s3 is not None else "file"
        self.env.update(env or {})
        self.args = list(args)
        if config is not None:
            self.config_path = tmp_path / "mediaedge.yaml"
            self.config_path.write_text(config)
            self.args += ["--config", str(self.config_path)]
        self.proc = None

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "serve", *self.args], env=self.env, cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=self.log)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mediaedge exited {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if requests.get(self.http + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise RuntimeError("mediaedge did not become ready: " + self.log_text()[-2000:])

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "log", None):
            self.log.close()

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self):
        return [json.loads(l) for l in self.log_text().splitlines() if l.startswith("{")]

    def token(self, *args):
        """Mints a token with `mediaedge token` under the same configuration."""
        out = subprocess.run([BIN, "token", *args, *self.args_config()], env=self.env, cwd=self.dir,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def args_config(self):
        return self.args[self.args.index("--config"):self.args.index("--config") + 2] if "--config" in self.args else []


@pytest.fixture(scope="session")
def swift_session(tmp_path_factory):
    """The session's Swift (started by the first server on S3), see swift_s3.py."""
    session = swift_s3.Session(tmp_path_factory.mktemp("swift"))
    yield session
    session.stop()


@pytest.fixture
def storage_backend():
    """The storage backend of make_server's servers: "file"; a module overrides this fixture
    (params=swift_s3.BACKENDS) to run its tests on S3 too."""
    return "file"


@pytest.fixture
def make_server(tmp_path, storage_backend, request):
    servers = []

    def make(**kw):
        sub = tmp_path / f"s{len(servers)}"
        sub.mkdir()
        if storage_backend == "s3" and "s3" not in kw:
            kw["s3"] = request.getfixturevalue("swift_session")
        s = Server(sub, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(make_server):
    return make_server().start()


def run(*args, env=None, cwd=None, **kw):
    """Runs the binary with the given arguments; returns the CompletedProcess."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAEDGE_")}
    e.update(env or {})
    return subprocess.run([BIN, *args], env=e, cwd=cwd, capture_output=True, text=True, **kw)
