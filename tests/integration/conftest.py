"""conftest.py: starts the real mediaedge binary on free loopback ports with a temp data dir."""
import json
import os
import signal
import random
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
# the binary under test is the sanitizers' build (build-asan)
SANITIZED = b"asan" in subprocess.run(["ldd", BIN], capture_output=True).stdout


def metric(server, name):
    """The sum of the samples of metric name on server's /metrics: name with its whole label set
    ('x{a="1"}'), or bare for every label set."""
    total = 0.0
    for line in requests.get(server.http + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


_GIVEN = set()  # the ports free_port() handed out in this process


def free_port():
    """A free loopback port below the kernel's ephemeral range (32768 and up here), so that the
    outgoing connections the tests make meanwhile (Redis, Swift, clients) cannot take it before
    the server that is given it binds it, as a port the kernel picks (bind to 0) can be.
    Under pytest-xdist each worker draws from a slice of its own, and no port is handed out twice
    by one process: a port is free only until whoever it was given to binds it."""
    low, _ = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    high = min(low, 32768)
    base = 1024 if high < 11000 else 10000
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    step = (high - base) // workers
    base, high = base + worker * step, base + (worker + 1) * step
    for _ in range(100):
        port = random.randrange(base, high)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                _GIVEN.add(port)
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below the ephemeral range")


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


class RedisServer:
    """A real redis-server on a free loopback port in its own directory: no snapshots; AOF with
    appendfsync always when aof (so that a restart, even after kill -9, keeps every write).
    cmd() speaks RESP itself (no client library needed)."""

    def __init__(self, tmp_path, aof=True, fsync="always"):
        self.dir = tmp_path
        self.port = free_port()
        self.aof = aof
        self.fsync = fsync  # appendfsync: always, or everysec (what the README tells operators)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes" if self.aof else "no", "--appendfsync", self.fsync],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except (OSError, RuntimeError):  # not listening yet, or LOADING its AOF
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()

    def restart(self, sig=signal.SIGKILL):
        self.stop(sig)
        return self.start()

    def cmd(self, *args):
        """One command; the reply as str, int, None or a list (an error reply raises)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._reply(f)

    def _reply(self, f):
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply(f) for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")


@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server for one test (skipped where redis-server is not installed)."""
    import shutil
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (./bootstrap check installs it)")
    d = tmp_path / "redis"
    d.mkdir()
    r = RedisServer(d).start()
    yield r
    r.stop(signal.SIGKILL)
