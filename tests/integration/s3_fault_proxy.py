"""s3_fault_proxy.py: a loopback HTTP proxy between mediaedge and Swift's S3 port that injects
faults on a seeded random schedule (part of the tests; nothing of it runs in production).

    proxy = FaultProxy(upstream_port, rate=0.10, seed=14).start()
    env["MEDIAEDGE_S3_ENDPOINT"] = proxy.endpoint
    ...
    proxy.injected        # {kind: {operation: count}}

Each request it reads whole (head and Content-Length body: libcurl sends no chunked bodies),
then, with probability `rate` (while `enabled`), one fault among those that apply to it:

    slowdown        503 with S3's SlowDown XML body; Swift never sees the request
    internal        500 InternalError; Swift never sees the request
    reset_before    the request reaches Swift and is carried out, the answer is lost: RST
    reset_request   RST while the request's body is still coming (half of it read); Swift
                    never sees it (requests with a body only)
    reset_response  Swift answers; the client gets the head and half the body (or half the
                    head, when there is no body), then RST
    stall           held `stall_seconds`, then forwarded normally

The request goes upstream unchanged (SigV4 signs the Host header and the x-amz-* ones; the
proxy adds no header of its own). Answers come back with their body re-framed by length."""
import http.client
import random
import socket
import socketserver
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

KINDS = ("slowdown", "internal", "reset_before", "reset_request", "reset_response", "stall")

ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{msg}</Message>'
             '<RequestId>fault-proxy</RequestId></Error>')


def operation(method, target, headers):
    """The S3 operation of a request, by method and query: e.g. "POST ?uploads"."""
    parts = urlsplit(target)
    q = parse_qs(parts.query, keep_blank_values=True)
    if "uploads" in q:
        return f"{method} ?uploads"
    if "partNumber" in q:
        return f"{method} ?partNumber" + ("+copy" if "x-amz-copy-source" in headers else "")
    if "uploadId" in q:
        return f"{method} ?uploadId"
    if "list-type" in q:
        return f"{method} ?list-type"
    path = parts.path.strip("/")
    return f"{method} " + ("object" if "/" in path else "bucket")


def rst(sock):
    """Closes with a TCP reset (SO_LINGER 0), not a clean FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class FaultProxy:
    def __init__(self, upstream_port, rate=0.10, seed=0, kinds=KINDS, stall_seconds=3.0, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.rate, self.kinds, self.stall_seconds = rate, tuple(kinds), stall_seconds
        self.rng = random.Random(seed)
        self.enabled = True
        self.lock = threading.Lock()
        self.injected = {}  # kind -> {operation: count}
        self.requests = {}  # operation -> count
        self.force = {}  # operation -> [kinds]: the next requests of that operation get these first
        self.events = []  # (time, kind, method, target) of each fault, for a failing test's message
        self.server = None

    # ---- schedule and counts ----

    def _choose(self, op, has_body, method="", target=""):
        with self.lock:
            self.requests[op] = self.requests.get(op, 0) + 1
            if not self.enabled:
                return None
            if self.force.get(op):
                kind = self.force[op].pop(0)
            elif self.rng.random() >= self.rate:
                return None
            else:
                kind = self.rng.choice([k for k in self.kinds if k != "reset_request" or has_body])
            self.injected.setdefault(kind, {})
            self.injected[kind][op] = self.injected[kind].get(op, 0) + 1
            self.events.append((time.time(), kind, method, target))
            return kind

    def count(self, kind=None):
        with self.lock:
            if kind is not None:
                return sum(self.injected.get(kind, {}).values())
            return sum(sum(v.values()) for v in self.injected.values())

    def summary(self):
        with self.lock:
            return {k: dict(v) for k, v in self.injected.items()}

    # ---- serving ----

    def start(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _serve(self, sock):
        rfile = sock.makefile("rb")
        upstream = None
        try:
            while True:
                line = rfile.readline(65537)
                if not line or line in (b"\r\n", b"\n"):
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers = []
                while True:
                    h = rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, value = h.decode("latin-1").split(":", 1)
                    headers.append((name.strip(), value.strip()))
                lower = {n.lower(): v for n, v in headers}
                length = int(lower.get("content-length", "0"))
                op = operation(method, target, lower)
                kind = self._choose(op, length > 0, method, target)
                if kind == "reset_request":
                    rfile.read(length // 2)
                    rst(sock)
                    return
                body = rfile.read(length) if length > 0 else b""
                if kind in ("slowdown", "internal"):
                    code, status, msg = (("SlowDown", "503 Slow Down", "Please reduce your request rate.")
                                         if kind == "slowdown" else
                                         ("InternalError", "500 Internal Server Error",
                                          "We encountered an internal error. Please try again."))
                    xml = ERROR_XML.format(code=code, msg=msg).encode()
                    sock.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
                                 f"Content-Length: {len(xml)}\r\n\r\n".encode() + xml)
                    continue
                if kind == "stall":
                    time.sleep(self.stall_seconds)
                if upstream is None:
                    upstream = http.client.HTTPConnection(*self.upstream, timeout=600)
                upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for n, v in headers:
                    upstream.putheader(n, v)
                upstream.endheaders(body if length > 0 else None)
                resp = upstream.getresponse()
                data = resp.read()
                if resp.will_close:
                    upstream.close()
                    upstream = None
                if kind == "reset_before":
                    rst(sock)
                    return
                head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
                for n, v in resp.getheaders():
                    if n.lower() not in ("transfer-encoding", "connection", "content-length"):
                        head += f"{n}: {v}\r\n"
                cl = resp.getheader("content-length") if method == "HEAD" else str(len(data))
                if cl is not None:
                    head += f"Content-Length: {cl}\r\n"
                out = head.encode("latin-1") + b"\r\n"
                if kind == "reset_response":
                    cut = len(out) + len(data) // 2 if data else len(out) // 2
                    sock.sendall((out + data)[:cut])
                    rst(sock)
                    return
                sock.sendall(out + data)
        except (OSError, ValueError, http.client.HTTPException):
            try:
                rst(sock)
            except OSError:
                pass
        finally:
            if upstream is not None:
                upstream.close()
