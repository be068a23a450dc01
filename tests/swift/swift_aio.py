#!/usr/bin/python3
"""swift_aio.py: OpenStack Swift all-in-one with its S3 layer (s3api) on loopback, in a temp
directory: the real S3 API the S3 backend is tested against (no fake: it checks SigV4
signatures and payload hashes and has the whole multipart API). The Debian packages
swift-proxy, swift-account, swift-container and swift-object (./bootstrap check installs them).

As a module (tests/integration/swift.py):  with SwiftAIO() as s: s.endpoint, s.access_key ...
As a command (the C unit tests):  swift_aio.py  prints one line
    ready <endpoint> <access key> <secret key>
once the first S3 call succeeds, then runs until its stdin closes (or SIGTERM), and removes
everything it made. ME_S3_ENDPOINT set in the environment: prints that one instead (a Swift
already running, e.g. a whole test run's) and starts nothing.

Layout as ../shared/notes/s3-and-sigv4.md: one storage policy, rings of one device each,
tempauth user test:tester / testing (the S3 access key and secret), about 2 s to start.
Virtual-hosted addressing too: s3api's storage_domain is localhost, so an endpoint
http://localhost:<port> with the bucket in the host (<bucket>.localhost, which curl and libcurl
resolve to loopback themselves) reaches the same buckets. The proxy's access log (the requests
as clients sent them: method and path) comes to this process over UDP: access_log()."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ACCESS_KEY, SECRET_KEY = "test:tester", "testing"
SERVERS = ("account", "container", "object", "proxy")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return all(os.path.exists(f"/usr/bin/swift-{n}-server") for n in SERVERS)


COMMON = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {dir}
devices = {dir}/devices
mount_check = false
disable_fallocate = true
log_name = {name}
log_facility = LOG_LOCAL0
log_level = WARNING
log_address = /nonexistent
"""

BACKEND = """
[pipeline:main]
pipeline = {name}-server

[app:{name}-server]
use = egg:swift#{name}

[{name}-replicator]
[{name}-auditor]
[{name}-updater]
"""

PROXY = """
[pipeline:main]
pipeline = catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
storage_domain = localhost
s3_acl = false
max_upload_part_num = 10000

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
access_log_udp_host = 127.0.0.1
access_log_udp_port = {log_port}
access_log_level = INFO
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
"""

SWIFT_CONF = """[swift-hash]
swift_hash_path_prefix = mediaedge
swift_hash_path_suffix = tests

[storage-policy:0]
name = gold
default = yes

[swift-constraints]
max_file_size = 10737418240
"""


def make_ring(path, port):
    """What `swift-ring-builder <path>.builder create 6 1 1; add r1z1-127.0.0.1:<port>/d1 1;
    rebalance` makes, in this process (nine runs of the command cost seconds of start-up)."""
    from swift.common.ring import RingBuilder
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": port, "device": "d1", "weight": 1})
    builder.rebalance()
    builder.save(path + ".builder")
    builder.get_ring().save(path + ".ring.gz")


class SwiftAIO:
    """Swift on free loopback ports in a temp dir; stop() (or the with block's end) removes it."""

    def __init__(self):
        self.dir = None
        self.procs = []
        self.endpoint = None
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        self.log_socket, self.log_lines, self.log_lock = None, [], threading.Lock()

    def _take_logs(self):
        sock = self.log_socket
        sock.settimeout(0.5)
        while self.log_socket is sock:  # until stop()
            try:
                line = sock.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            except OSError:
                return
            with self.log_lock:
                self.log_lines.append(line)
                del self.log_lines[:-20000]  # the latest only

    def access_log(self):
        """The proxy's access log lines so far (syslog text: "... PUT /bucket/key HTTP/1.0 200 ...")."""
        with self.log_lock:
            return list(self.log_lines)

    def start(self, timeout=30):
        self.dir = tempfile.mkdtemp(prefix="mediaedge-swift-")
        os.makedirs(f"{self.dir}/devices/d1")
        ports = {n: free_port() for n in SERVERS}
        self.log_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.log_socket.bind(("127.0.0.1", 0))
        threading.Thread(target=self._take_logs, daemon=True).start()
        with open(f"{self.dir}/swift.conf", "w") as f:
            f.write(SWIFT_CONF)
        for n in ("account", "container", "object"):
            with open(f"{self.dir}/{n}.conf", "w") as f:
                f.write(COMMON.format(port=ports[n], dir=self.dir, name=n) + BACKEND.format(name=n))
            make_ring(f"{self.dir}/{n}", ports[n])
        with open(f"{self.dir}/proxy.conf", "w") as f:
            # no memcached: the cache filter's calls to a closed port fail fast and are ignored
            f.write(COMMON.format(port=ports["proxy"], dir=self.dir, name="proxy") +
                    PROXY.format(memcache_port=free_port(), log_port=self.log_socket.getsockname()[1]))
        log = open(f"{self.dir}/swift.log", "ab")
        for n in SERVERS:
            self.procs.append(subprocess.Popen(
                ["/usr/bin/python3", f"/usr/bin/swift-{n}-server", f"{self.dir}/{n}.conf"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True))
        log.close()
        self.endpoint = f"http://127.0.0.1:{ports['proxy']}"
        deadline = time.time() + timeout
        while True:
            try:
                # any S3 answer (403: not signed) means the proxy and s3api are up; then wait
                # for the backends: a signed bucket creation succeeds
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
            except urllib.error.HTTPError:
                if self._backends_up():
                    return self
            except OSError:
                pass
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                log = open(f"{self.dir}/swift.log", errors="replace").read()[-3000:]
                self.stop()
                raise RuntimeError("Swift did not start: " + log)
            time.sleep(0.1)

    def _backends_up(self):
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    def client(self):
        """A botocore S3 client for this Swift (path-style, as awscli needs it)."""
        import botocore.session
        from botocore.config import Config
        session = botocore.session.get_session()
        return session.create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10, "mode": "standard"}))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        if self.log_socket is not None:
            self.log_socket.close()
            self.log_socket = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    if os.environ.get("ME_S3_ENDPOINT"):
        print("ready", os.environ["ME_S3_ENDPOINT"], os.environ.get("ME_S3_ACCESS_KEY", ACCESS_KEY),
              os.environ.get("ME_S3_SECRET_KEY", SECRET_KEY), flush=True)
        sys.stdin.read()
        return
    if not available():
        print("unavailable: install swift-proxy swift-account swift-container swift-object", flush=True)
        return
    s = SwiftAIO()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        s.start()
        print("ready", s.endpoint, s.access_key, s.secret_key, flush=True)
        sys.stdin.read()  # until the test closes our stdin (or exits)
    finally:
        s.stop()


if __name__ == "__main__":
    main()
