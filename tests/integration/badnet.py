"""badnet.py: a phone on a bad network, as a TCP proxy on loopback (the test machines' kernel
has no netem). Each connection accepted on 127.0.0.1 is forwarded to the target and, per
direction: throttled (default 2 MB/s client to server, unlimited back), delayed (each chunk it
forwards waits a random 100-300 ms, as a delay line: latency without losing throughput),
stalled for seconds at random points, and cut (both sockets reset) at random points.

Everything random is keyed on the bytes forwarded client -> server (counted over all
connections) and drawn from one seeded random.Random, so a failing run is replayed by giving
its seed again (it is printed by the tests and by the command line):
  - cuts: the n-th cut happens when the client -> server byte count reaches a point drawn
    uniformly from [cut_min, cut_max] bytes after the previous cut; a cut that falls on a
    request head or between requests is moved to the next body byte when cut_mid_body is on
    (the point of the exercise is losing a PATCH in flight), and with probability
    cut_response it instead cuts the connection when the server answers the request in flight
    (the request was received whole, the client never learns it);
  - the first body_cuts_first cuts are always in a body (never on an answer);
  - stalls: likewise every [stall_every_min, stall_every_max] bytes, for [stall_min,
    stall_max] seconds, in that direction of that connection only.
The proxy follows HTTP/1.1 requests (Content-Length bodies) and HTTP/2 frames (DATA until
END_STREAM) on the client side, so each cut is reported with where it fell ("body" when a
request body had started and not ended, else "head" or "idle").

As a library: BadNet(target_port, seed=..., ...).start() runs the proxy in a thread; .port,
.stats(), .stop(). As a command: python3 badnet.py --target 127.0.0.1:8080 [--seed N] ...
"""
import argparse
import asyncio
import random
import socket
import struct
import sys
import threading
import time

MB = 1000 * 1000
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Http1Tracker:
    """Where an HTTP/1.1 client stands: in a request head, in its body, or between requests."""

    def __init__(self):
        self.head = b""
        self.body_left = 0
        self.body_seen = 0
        self.method = None

    def feed(self, data):
        i = 0
        while i < len(data):
            if self.body_left > 0:
                n = min(self.body_left, len(data) - i)
                self.body_left -= n
                self.body_seen += n
                i += n
                continue
            end = (self.head + data[i:]).find(b"\r\n\r\n")
            if end < 0:
                self.head = (self.head + data[i:])[-65536:]
                return
            take = end + 4 - len(self.head)
            head, self.head = self.head + data[i:i + take], b""
            i += take
            self.method = head.split(b" ", 1)[0].decode(errors="replace")
            self.body_left, self.body_seen = 0, 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    try:
                        self.body_left = int(v.strip())
                    except ValueError:
                        pass

    def where(self):
        if self.body_left > 0:
            return "body" if self.body_seen > 0 else "head"
        return "head" if self.head else "idle"


class _Http2Tracker:
    """Where an HTTP/2 client stands: a stream whose body started and has not ended is "body"."""

    def __init__(self):
        self.buf = b""
        self.preface = True
        self.open_bodies = {}  # stream id -> DATA bytes so far, for streams without END_STREAM

    def feed(self, data):
        self.buf += data
        if self.preface:
            if len(self.buf) < len(H2_PREFACE):
                return None
            self.buf, self.preface = self.buf[len(H2_PREFACE):], False
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            ftype, flags = self.buf[3], self.buf[4]
            stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            if len(self.buf) < 9 + length:
                if ftype == 0 and length > 0:  # a DATA frame under way: its stream is in its body
                    self.open_bodies[stream] = self.open_bodies.get(stream, 0) + 1
                break
            self.buf = self.buf[9 + length:]
            if ftype == 1 and not flags & 0x1:  # HEADERS without END_STREAM: a body follows
                self.open_bodies.setdefault(stream, 0)
            elif ftype == 0:
                self.open_bodies[stream] = self.open_bodies.get(stream, 0) + length
                if flags & 0x1:
                    self.open_bodies.pop(stream, None)
            elif ftype == 3:  # RST_STREAM
                self.open_bodies.pop(stream, None)
        return None

    def where(self):
        return "body" if any(n > 0 for n in self.open_bodies.values()) else "idle"


class _Tracker:
    """HTTP/1.1 or HTTP/2, decided by the first bytes."""

    def __init__(self):
        self.impl = None
        self.pending = b""

    def feed(self, data):
        if self.impl is None:
            self.pending += data
            if len(self.pending) < len(H2_PREFACE) and H2_PREFACE.startswith(self.pending):
                return
            self.impl = _Http2Tracker() if self.pending.startswith(H2_PREFACE) else _Http1Tracker()
            data, self.pending = self.pending, b""
        self.impl.feed(data)

    def where(self):
        return self.impl.where() if self.impl is not None else "idle"

    def method(self):
        return getattr(self.impl, "method", None)


class BadNet:
    def __init__(self, target_port, target_host="127.0.0.1", seed=None, up_rate=2 * MB, down_rate=None,
                 latency=(0.1, 0.3), cut_every=(6 << 20, 12 << 20), cut_mid_body=True, cut_response=0.0,
                 body_cuts_first=0, max_cuts=None, stall_every=(8 << 20, 24 << 20), stall=(1.0, 3.0), chunk=16384, log=None):
        self.target = (target_host, target_port)
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.up_rate, self.down_rate = up_rate, down_rate
        self.latency, self.cut_every, self.cut_mid_body = latency, cut_every, cut_mid_body
        self.cut_response, self.body_cuts_first, self.max_cuts = cut_response, body_cuts_first, max_cuts
        self.stall_every, self.stall = stall_every, stall
        self.chunk = chunk
        self.log = log or (lambda msg: None)
        self.port = None
        self.c2s_bytes = 0  # bytes delivered to the server, all connections
        self.s2c_bytes = 0
        self.connections = 0
        self.cuts = []  # {"at": c2s bytes, "where": body/head/idle/response, "method": ..., "conn": n}
        self.stalls = []
        self._next_cut = self._draw(cut_every) if cut_every else None
        self._next_stall = self._draw(stall_every) if stall_every else None
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._server = None
        self._writers = set()

    def _draw(self, span):
        return self.c2s_bytes + self.rng.randint(int(span[0]), int(span[1]))

    # ---- as a library

    def start(self):
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="badnet")
        self._thread.start()
        if not ready.wait(10) or self.port is None:
            raise RuntimeError("badnet proxy did not start")
        self.log(f"badnet: listening on 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}, seed {self.seed}")
        return self

    def stop(self):
        if self._loop is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self):
        """Closes the listener and every connection, and lets their tasks end."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self):
        with self._lock:
            return {"seed": self.seed, "c2s_bytes": self.c2s_bytes, "s2c_bytes": self.s2c_bytes,
                    "connections": self.connections, "cuts": list(self.cuts), "stalls": list(self.stalls)}

    def _run(self, ready):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, reuse_address=True))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
        finally:
            ready.set()
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._loop.close()

    async def serve_forever(self, port=0):
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.log(f"badnet: listening on 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}, seed {self.seed}")
        await self._server.serve_forever()

    # ---- one connection

    async def _handle(self, c_reader, c_writer):
        with self._lock:
            self.connections += 1
            conn = self.connections
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.transport.abort()
            return
        self._writers.update((c_writer, s_writer))
        state = {"cut": False, "cut_on_response": False, "tracker": _Tracker(), "conn": conn}
        cut = asyncio.Event()

        def do_cut():
            state["cut"] = True
            for w in (c_writer, s_writer):
                sock = w.get_extra_info("socket")
                if sock is not None:  # a reset, as a dropped radio link looks to both ends at last
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                w.transport.abort()
            cut.set()

        up = asyncio.ensure_future(self._pump(c_reader, s_writer, True, state, do_cut))
        down = asyncio.ensure_future(self._pump(s_reader, c_writer, False, state, do_cut))
        await asyncio.wait([up, down], return_when=asyncio.ALL_COMPLETED)
        for w in (c_writer, s_writer):
            w.transport.abort() if state["cut"] else w.close()
            self._writers.discard(w)

    async def _pump(self, reader, writer, upstream, state, do_cut):
        rate = self.up_rate if upstream else self.down_rate
        queue = asyncio.Queue(maxsize=64)  # the delay line: (deliver at, bytes); None ends it
        loop = asyncio.get_running_loop()

        async def deliver():
            while True:
                item = await queue.get()
                if item is None:
                    break
                at, data = item
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if state["cut"]:
                    return
                if upstream:
                    data = self._account_up(data, state, do_cut)
                    if state.get("cut_after"):
                        writer.write(data)
                        do_cut()
                        return
                else:
                    if state["cut_on_response"]:
                        with self._lock:
                            self.cuts.append({"at": self.c2s_bytes, "where": "response", "conn": state["conn"],
                                              "method": state["tracker"].method()})
                        self.log(f"badnet: cut conn {state['conn']} as the server answers")
                        do_cut()
                        return
                    with self._lock:
                        self.s2c_bytes += len(data)
                writer.write(data)
                try:
                    await writer.drain()
                except (ConnectionError, OSError):
                    return
            if not state["cut"]:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass

        sender = asyncio.ensure_future(deliver())
        started, sent, last_at = loop.time(), 0, 0.0
        try:
            while not state["cut"]:
                try:
                    data = await reader.read(self.chunk)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                if rate:
                    sent += len(data)
                    ahead = started + sent / rate - loop.time()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    elif ahead < -0.5:  # idle a while: no burst credit
                        started, sent = loop.time(), len(data)
                lat = self.rng.uniform(*self.latency) if self.latency else 0.0
                last_at = max(last_at, loop.time() + lat)
                put = asyncio.ensure_future(queue.put((last_at, data)))
                await asyncio.wait([put, sender], return_when=asyncio.FIRST_COMPLETED)
                if not put.done():  # the delivering side ended (a cut, a closed peer)
                    put.cancel()
                    break
                if upstream and self._stall_due():
                    pause = self.rng.uniform(*self.stall)
                    with self._lock:
                        self.stalls.append({"at": self.c2s_bytes, "seconds": round(pause, 2), "conn": state["conn"]})
                    self.log(f"badnet: stall conn {state['conn']} for {pause:.1f} s")
                    await asyncio.sleep(pause)
                    last_at = max(last_at, loop.time())
        finally:
            if not state["cut"] and not sender.done():
                put = asyncio.ensure_future(queue.put(None))  # the end, after what is queued
                await asyncio.wait([put, sender], return_when=asyncio.FIRST_COMPLETED)
                put.cancel()
            else:
                sender.cancel()
            try:
                await sender
            except asyncio.CancelledError:
                pass

    def _stall_due(self):
        with self._lock:
            if self._next_stall is None or self.c2s_bytes < self._next_stall:
                return False
            self._next_stall = self._draw(self.stall_every)
            return True

    def _account_up(self, data, state, do_cut):
        """Counts data as it reaches the server, cutting when a cut point falls inside it.
        Returns what is still to be written (possibly shortened), or None after a cut."""
        tracker = state["tracker"]
        with self._lock:
            due = (self._next_cut is not None and self.c2s_bytes + len(data) > self._next_cut and
                   (self.max_cuts is None or len(self.cuts) < self.max_cuts))
            if not due:
                self.c2s_bytes += len(data)
                tracker.feed(data)
                return data
            # the point inside data, moved on to the next body byte if need be
            k = max(0, self._next_cut - self.c2s_bytes)
            tracker.feed(data[:k])
            if self.cut_mid_body and tracker.where() != "body":
                # feed byte by byte until inside a body (bodies are where the bytes are)
                while k < len(data) and tracker.where() != "body":
                    tracker.feed(data[k:k + 1])
                    k += 1
                if tracker.where() != "body":
                    self.c2s_bytes += len(data)
                    return data  # still not in a body: try in the next chunk
            if (self.cut_response and len(self.cuts) >= self.body_cuts_first and
                    self.rng.random() < self.cut_response):
                # let this request reach the server whole; cut when it answers
                tracker.feed(data[k:])
                self.c2s_bytes += len(data)
                self._next_cut = self._draw(self.cut_every)
                state["cut_on_response"] = True
                return data
            self.c2s_bytes += k
            self.cuts.append({"at": self.c2s_bytes, "where": tracker.where(), "conn": state["conn"],
                              "method": tracker.method()})
            self._next_cut = self._draw(self.cut_every)
        self.log(f"badnet: cut conn {state['conn']} at {self.c2s_bytes} bytes up ({tracker.where()})")
        state["cut_after"] = True  # the bytes before the cut point still go out, then the reset
        return data[:k]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="HOST:PORT of the server")
    ap.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--up-rate", type=float, default=2.0, help="MB/s client to server (0: unlimited)")
    ap.add_argument("--down-rate", type=float, default=0.0, help="MB/s server to client (0: unlimited)")
    ap.add_argument("--latency-ms", default="100,300", help="MIN,MAX per chunk and direction")
    ap.add_argument("--cut-every-mib", default="6,12", help="MIN,MAX MiB up between cuts (0,0: none)")
    ap.add_argument("--cut-response", type=float, default=0.0, help="share of cuts made on the answer")
    ap.add_argument("--stall-every-mib", default="8,24", help="MIN,MAX MiB up between stalls (0,0: none)")
    ap.add_argument("--stall-s", default="1,3", help="MIN,MAX seconds of a stall")
    a = ap.parse_args(argv)
    host, _, port = a.target.rpartition(":")

    def pair(s, scale=1.0):
        lo, hi = (float(x) for x in s.split(","))
        return None if hi == 0 else (lo * scale, hi * scale)

    net = BadNet(int(port), host or "127.0.0.1", seed=a.seed, up_rate=a.up_rate * MB or None,
                 down_rate=a.down_rate * MB or None, latency=pair(a.latency_ms, 0.001),
                 cut_every=pair(a.cut_every_mib, 1 << 20), cut_response=a.cut_response,
                 stall_every=pair(a.stall_every_mib, 1 << 20), stall=pair(a.stall_s) or (0, 0),
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        asyncio.run(net.serve_forever(a.listen))
    except KeyboardInterrupt:
        pass
    print(net.stats(), file=sys.stderr)


if __name__ == "__main__":
    main()
