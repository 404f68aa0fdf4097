#!/usr/bin/env python3
"""The delay half of scripts/bench's shaped WAN link (BENCH_LINK=wan).

    wanlink.py serve --delay-ms 20 --control SOCK \\
        --forward 10.231.50.1:23306=127.0.0.1:23306 --forward ... [--plain LISTEN=TARGET ...]
    wanlink.py stats --control SOCK      # JSON: bytes each way per forward since the start
    wanlink.py probe --host H --port P   # the link's round trip and rate, through a --probe forward

`serve` listens on each LISTEN address (the root side of the bench's veth pair) and forwards
every connection to TARGET (a sandbox server on 127.0.0.1). Each chunk of bytes read from either
side is held for --delay-ms before it is written to the other side, so a round trip through it
takes twice that. It holds chunks, not the stream: data keeps flowing while earlier bytes wait,
in order, and each byte simply arrives --delay-ms later (a pipe of that length, not one packet
per round trip). The bytes held in each direction are bounded (--max-held-bytes); past that it
stops reading, so the sender is slowed by TCP's own flow control. The bandwidth cap is not here:
tbf on the veth ends does it.

`--probe LISTEN=TARGET` is a forward like the others (delayed, counted apart) to a service of
`serve` itself on TARGET (127.0.0.1): it echoes, sends or swallows bytes, so that `probe`, run
from the client's namespace, measures what the link delivers without a database in the way.

`--plain` forwards without delay and is not counted (the AWS emulator, which the tool inside the
namespace must also reach). The counts are payload bytes (what the MySQL protocol sends, TLS
included), both directions, summed over all connections of a forward; `stats` reads them so the
bench can take the difference around each method.
"""
import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import sys


class Counter:
    def __init__(self):
        self.up = 0  # client -> server
        self.down = 0  # server -> client
        self.connections = 0


async def pump(reader, writer, delay, count, attr, max_held):
    """Copies reader to writer, each chunk `delay` seconds after it was read, in order."""
    loop = asyncio.get_running_loop()
    held = collections.deque()  # (due, bytes); None as bytes marks the end of the stream
    state = {"bytes": 0}
    more = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def read_side():
        try:
            while True:
                await room.wait()
                data = await reader.read(262144)
                if not data:
                    break
                setattr(count, attr, getattr(count, attr) + len(data))
                held.append((loop.time() + delay, data))
                state["bytes"] += len(data)
                if state["bytes"] >= max_held:
                    room.clear()
                more.set()
        except (ConnectionError, OSError):
            pass
        finally:
            held.append((loop.time() + delay, None))
            more.set()

    async def write_side():
        try:
            while True:
                while not held:
                    more.clear()
                    await more.wait()
                due = held[0][0]
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                # Everything that is due now goes in one write.
                now = loop.time()
                parts, end = [], False
                while held and held[0][0] <= now:
                    _, data = held.popleft()
                    if data is None:
                        end = True
                        break
                    parts.append(data)
                if parts:
                    n = sum(len(p) for p in parts)
                    writer.write(b"".join(parts))
                    await writer.drain()
                    state["bytes"] -= n
                    if state["bytes"] < max_held:
                        room.set()
                if end:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
        except (ConnectionError, OSError):
            pass

    reading = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reading.cancel()


async def serve_forward(listen, target, delay, count, max_held):
    lhost, lport = listen
    thost, tport = target

    async def handle(creader, cwriter):
        count.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection(thost, tport)
        except OSError:
            cwriter.close()
            return
        for w in (cwriter, swriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(
                pump(creader, swriter, delay, count, "up", max_held),
                pump(sreader, cwriter, delay, count, "down", max_held),
            )
        finally:
            for w in (cwriter, swriter):
                try:
                    w.close()
                except Exception:
                    pass

    return await asyncio.start_server(handle, lhost, lport, reuse_address=True)


async def probe_service(reader, writer):
    """The far end of `probe`: `echo` (echo every byte), `down N` (send N bytes), `up` (read to
    the end, then answer how many bytes came)."""
    line = (await reader.readline()).decode().split()
    if not line:
        writer.close()
        return
    if line[0] == "echo":
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    elif line[0] == "down":
        left = int(line[1])
        block = b"x" * 262144
        while left > 0:
            writer.write(block[: min(left, len(block))])
            left -= min(left, len(block))
            await writer.drain()
    elif line[0] == "up":
        n = 0
        while True:
            data = await reader.read(262144)
            if not data:
                break
            n += len(data)
        writer.write(b"%d\n" % n)
        await writer.drain()
    writer.close()


def probe(args):
    """Round trip: the best of --pings one-byte echoes on one connection (after a warm-up).
    Rate: --megabytes each way on a fresh connection, from the first byte to the last (down),
    and from the first byte sent to the answer less one round trip (up)."""
    import time

    def conn(word):
        s = socket.create_connection((args.host, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(word.encode() + b"\n")
        return s

    s = conn("echo")
    rtts = []
    for _ in range(args.pings + 1):
        t = time.perf_counter()
        s.sendall(b"p")
        if not s.recv(1):
            raise SystemExit("probe: the echo closed")
        rtts.append(time.perf_counter() - t)
    s.close()
    rtt = min(rtts[1:])

    n = args.megabytes * 1000000
    s = conn("down %d" % n)
    got, first = 0, None
    while got < n:
        d = s.recv(1 << 20)
        if not d:
            break
        if first is None:
            first = time.perf_counter()
            got += len(d)
            first_len = len(d)
            continue
        got += len(d)
    last = time.perf_counter()
    s.close()
    down = (got - first_len) * 8 / (last - first) / 1e6 if last > first else 0.0

    s = conn("up")
    block = b"y" * 262144
    t = time.perf_counter()
    sent = 0
    while sent < n:
        s.sendall(block[: min(n - sent, len(block))])
        sent += min(n - sent, len(block))
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        answer += d
    done = time.perf_counter()
    s.close()
    up = int(answer) * 8 / max(done - t - rtt, 1e-6) / 1e6
    print(json.dumps({"rtt_ms": round(rtt * 1000, 2), "rtt_ms_median": round(sorted(rtts[1:])[len(rtts) // 2] * 1000, 2),
                      "down_mbit": round(down, 1), "up_mbit": round(up, 1), "megabytes": args.megabytes}))


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def pair(text):
    listen, _, target = text.partition("=")
    return addr(listen), addr(target)


async def serve(args):
    delay = args.delay_ms / 1000.0
    counters = {}
    servers = []
    for spec in args.forward:
        listen, target = pair(spec)
        name = "%s:%d" % listen
        counters[name] = Counter()
        servers.append(await serve_forward(listen, target, delay, counters[name], args.max_held_bytes))
    for spec in args.plain:
        listen, target = pair(spec)
        servers.append(await serve_forward(listen, target, 0.0, Counter(), args.max_held_bytes))
    for spec in args.probe:
        listen, target = pair(spec)
        servers.append(await asyncio.start_server(probe_service, target[0], target[1], reuse_address=True))
        servers.append(await serve_forward(listen, target, delay, Counter(), args.max_held_bytes))

    async def control(reader, writer):
        await reader.read(100)
        body = {n: {"up": c.up, "down": c.down, "connections": c.connections} for n, c in counters.items()}
        writer.write(json.dumps(body).encode())
        await writer.drain()
        writer.close()

    if os.path.exists(args.control):
        os.unlink(args.control)
    servers.append(await asyncio.start_unix_server(control, args.control))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    try:
        os.unlink(args.control)
    except OSError:
        pass


def stats(args):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(args.control)
        s.sendall(b"stats\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    body = json.loads(out)
    if args.total:
        print(sum(c["up"] + c["down"] for c in body.values()))
    else:
        print(json.dumps(body))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--delay-ms", type=float, required=True, help="added in each direction (half the round trip)")
    s.add_argument("--forward", action="append", default=[], metavar="LISTEN=TARGET")
    s.add_argument("--plain", action="append", default=[], metavar="LISTEN=TARGET")
    s.add_argument("--probe", action="append", default=[], metavar="LISTEN=TARGET")
    s.add_argument("--control", required=True, help="a unix socket `stats` reads the counts from")
    s.add_argument("--max-held-bytes", type=int, default=4 << 20, help="per direction and connection")
    t = sub.add_parser("stats")
    t.add_argument("--control", required=True)
    t.add_argument("--total", action="store_true", help="one number: every forward's bytes, both ways")
    r = sub.add_parser("probe")
    r.add_argument("--host", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--pings", type=int, default=10)
    r.add_argument("--megabytes", type=int, default=50)
    args = p.parse_args()
    if args.cmd == "serve":
        asyncio.run(serve(args))
    elif args.cmd == "stats":
        stats(args)
    else:
        probe(args)


if __name__ == "__main__":
    sys.exit(main())
