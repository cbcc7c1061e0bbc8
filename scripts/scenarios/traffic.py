#!/usr/bin/env python3
"""Traffic programs for the recorded scenarios (stdlib only).

Subcommands:
  http-server   HTTP/1.1 server: response size, think time, status, reset mid-transfer,
                a receiver that never reads or reads slowly (tiny SO_RCVBUF)
  http-client   GETs or POSTs: sequential, parallel, keep-alive, waiting after connect
  connect       TCP connects to a port (refused or unanswered), reports how each ended
  dns-server    UDP DNS server with hand-built answers (A, NXDOMAIN, SERVFAIL, late, never)
  dns-client    UDP DNS queries for a list of names
  rtp-send      isochronous RTP v2 stream (PT 0, 20 ms, 172-byte payload)
  udp-sink      receives and discards UDP datagrams
  udp-probe     UDP datagrams to (closed) ports, reports ICMP errors

Paths understood by http-server: /N (a body of N bytes), /status/CODE (that status code),
anything else gets --size bytes and --status.
"""

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable",
           403: "Forbidden", 502: "Bad Gateway"}
SO_MAX_PACING_RATE = 47  # Linux: TCP paces itself to this rate (bytes/s)
PATTERN = (b"pcap-analyzer scenario payload 0123456789abcdefghijklmnopqrstuvwxyz\n" * 1024)[:65536]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def tcp_socket(host):
    """A TCP socket using CUBIC, the common Linux default (a namespace may inherit another
    default from its host; PA_TCP_CC overrides)."""
    s = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, os.environ.get("PA_TCP_CC", "cubic").encode())
    except OSError as e:
        log("traffic: cannot choose the congestion control:", e)
    return s


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---------------------------------------------------------------- HTTP server

def read_headers(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def header_value(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def send_body(conn, n):
    mv = memoryview(PATTERN)
    while n > 0:
        k = min(n, len(PATTERN))
        conn.sendall(mv[:k])
        n -= k


def serve_conn(conn, a):
    if a.pacing:
        conn.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, a.pacing)
    buf = b""
    served = 0
    try:
        while True:
            head, buf = read_headers(conn, buf)
            if head is None:
                return
            method, path, _ = (head.split("\r\n")[0].split(" ") + ["", "", ""])[:3]
            length = int(header_value(head, "content-length") or 0)
            if length:
                if a.no_read:
                    log("http-server: not reading the request body")
                    time.sleep(3600)
                    return
                got = len(buf)
                buf = b""
                pace = a.slow_read
                start = time.monotonic()
                while got < length:
                    chunk = conn.recv(min(a.read_chunk, length - got))
                    if not chunk:
                        return
                    got += len(chunk)
                    if pace and got < a.slow_read_until:
                        ahead = got / pace - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
            if a.think:
                time.sleep(a.think)
            status, size = a.status, a.size
            parts = path.strip("/").split("/")
            if parts[0] == "status" and len(parts) > 1:
                status = int(parts[1])
                size = a.error_size
            elif parts[0].isdigit():
                size = int(parts[0])
            if status != 200 and not (parts[0] == "status"):
                size = a.error_size
            hdr = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                   f"Content-Length: {size}\r\nContent-Type: text/plain\r\n\r\n").encode()
            conn.sendall(hdr)
            if a.reset_after is not None and size > a.reset_after:
                send_body(conn, a.reset_after)
                time.sleep(0.05)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                log("http-server: reset after", a.reset_after, "bytes")
                return
            send_body(conn, size)
            served += 1
            if (header_value(head, "connection") or "").lower() == "close":
                return
    except OSError as e:
        log("http-server:", e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def http_server(a):
    s = tcp_socket(a.bind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.bind((a.bind, a.port))
    s.listen(64)
    log("http-server: listening on", a.bind, a.port)
    while True:
        conn, _peer = s.accept()
        threading.Thread(target=serve_conn, args=(conn, a), daemon=True).start()


# ---------------------------------------------------------------- HTTP client

def read_response(sock, buf=b""):
    head, rest = read_headers(sock, buf)
    if head is None:
        raise ConnectionError("closed before the response headers")
    status = int(head.split(" ")[1])
    length = int(header_value(head, "content-length") or 0)
    got = len(rest)
    while got < length:
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError(f"closed after {got} of {length} body bytes")
        got += len(chunk)
    return status, got


def one_connection(a, paths, results, idx):
    t0 = time.monotonic()
    try:
        sock = tcp_socket(a.host)
        if a.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
        sock.settimeout(a.timeout)
        sock.connect((a.host, a.port))
        if a.wait:
            time.sleep(a.wait)
        for i, path in enumerate(paths):
            last = i == len(paths) - 1
            conn = "close" if last else "keep-alive"
            if a.post:
                head = (f"POST {path} HTTP/1.1\r\nHost: {a.host}\r\nContent-Length: {a.post}\r\n"
                        f"Connection: {conn}\r\n\r\n").encode()
                sock.sendall(head)
                send_body(sock, a.post)
            else:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {a.host}\r\nConnection: {conn}\r\n\r\n".encode())
            status, n = read_response(sock)
            results.append((idx, path, status, n, round(time.monotonic() - t0, 3)))
            if a.interval and not last:
                time.sleep(a.interval)
        sock.close()
    except (OSError, ConnectionError) as e:
        results.append((idx, "-", "error", str(e), round(time.monotonic() - t0, 3)))


def http_client(a):
    paths = a.paths.split(",")
    results = []
    if a.parallel > 1:
        threads = [threading.Thread(target=one_connection, args=(a, [paths[i % len(paths)]], results, i))
                   for i in range(a.parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif a.keepalive:
        one_connection(a, paths, results, 0)
    else:
        for i, p in enumerate(paths):
            one_connection(a, [p], results, i)
            if a.interval and i < len(paths) - 1:
                time.sleep(a.interval)
    for r in results:
        log("http-client:", *r)


# ---------------------------------------------------------------- TCP connects

def connect(a):
    for i in range(a.count):
        t0 = time.monotonic()
        s = tcp_socket(a.host)
        s.settimeout(a.timeout)
        try:
            s.connect((a.host, a.port + (i if a.port_step else 0)))
            res = "connected"
        except ConnectionRefusedError:
            res = "refused"
        except socket.timeout:
            res = "timed out"
        except OSError as e:
            res = str(e)
        s.close()
        log("connect:", i, res, round(time.monotonic() - t0, 3))
        if a.interval and i < a.count - 1:
            time.sleep(a.interval)


# ---------------------------------------------------------------- DNS

def qname_labels(data, off):
    labels = []
    while data[off]:
        n = data[off]
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += n + 1
    return labels, off + 1


def dns_server(a):
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    rng = random.Random(a.seed)
    log("dns-server: listening on", a.bind, a.port)
    while True:
        data, peer = s.recvfrom(4096)
        if len(data) < 12:
            continue
        qid, flags, qd = struct.unpack_from("!HHH", data, 0)
        labels, end = qname_labels(data, 12)
        question = data[12:end + 4]
        first = labels[0] if labels else ""
        if first.startswith("drop") or rng.random() * 100 < a.drop_pct:
            log("dns-server: never answering", ".".join(labels))
            continue
        rd = flags & 0x0100
        if first.startswith("nx"):
            rcode, answers = 3, b""
        elif first.startswith("sf"):
            rcode, answers = 2, b""
        else:
            rcode = 0
            addr = bytes([10, 77, 1, (sum(map(ord, first)) % 250) + 1])
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + addr
        ancount = 1 if answers else 0
        hdr = struct.pack("!HHHHHH", qid, 0x8000 | rd | 0x0080 | rcode, 1, ancount, 0, 0)
        reply = hdr + question + answers
        delay = rng.uniform(a.delay_min, a.delay_max) if a.delay_max else 0.0
        if delay:
            threading.Timer(delay, s.sendto, args=(reply, peer)).start()
        else:
            s.sendto(reply, peer)


def dns_query(qid, name):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


def dns_client(a):
    rng = random.Random(a.seed)
    for i, name in enumerate(a.names.split(",")):
        s = socket.socket(family(a.server), socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        for attempt in range(1 + a.retries):
            qid = rng.randrange(1, 65535)
            t0 = time.monotonic()
            s.sendto(dns_query(qid, name), (a.server, a.port))
            try:
                data, _ = s.recvfrom(4096)
                rcode = struct.unpack_from("!H", data, 2)[0] & 0xF
                log("dns-client:", name, "rcode", rcode, round(time.monotonic() - t0, 3))
                break
            except socket.timeout:
                log("dns-client:", name, "timed out")
        s.close()
        if a.interval and i < len(a.names.split(",")) - 1:
            time.sleep(a.interval)


# ---------------------------------------------------------------- RTP / UDP

def rtp_send(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    if a.bind:
        s.bind((a.bind, a.sport))
    time.sleep(a.start_after)
    seq, ts = a.seq, a.ts
    start = time.monotonic()
    payload_len = a.payload - 12
    for i in range(a.count):
        target = start + i * a.ptime
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        hdr = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | a.pt, seq & 0xFFFF, ts & 0xFFFFFFFF, a.ssrc)
        body = bytes([0xFF ^ ((i + k) & 0x7F) for k in range(payload_len)])  # mu-law-ish noise
        s.sendto(hdr + body, (a.host, a.port))
        seq += 1
        ts += int(8000 * a.ptime)
    time.sleep(a.linger)
    log("rtp-send: sent", a.count)


def udp_sink(a):
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    s.settimeout(a.duration)
    n = 0
    end = time.monotonic() + a.duration
    try:
        while time.monotonic() < end:
            s.recvfrom(4096)
            n += 1
    except socket.timeout:
        pass
    log("udp-sink: received", n)


def udp_probe(a):
    ports = []
    for part in a.ports.split(","):
        lo, _, hi = part.partition("-")
        ports.extend(range(int(lo), int(hi or lo) + 1))
    for i in range(a.count):
        port = ports[i % len(ports)]
        s = socket.socket(family(a.host), socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        s.connect((a.host, port))
        s.send(a.message.encode() % i)
        try:
            s.recv(2048)
            res = "answered"
        except ConnectionRefusedError:
            res = "refused (ICMP port unreachable)"
        except socket.timeout:
            res = "no answer"
        s.close()
        log("udp-probe:", port, res)
        if a.interval:
            time.sleep(a.interval)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("http-server")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--size", type=int, default=2000, help="response body bytes")
    p.add_argument("--think", type=float, default=0.0, help="seconds before answering each request")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--error-size", type=int, default=300, help="body bytes of a non-200 answer")
    p.add_argument("--reset-after", type=int, default=None, help="send this many body bytes, then RST")
    p.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF of the listening socket")
    p.add_argument("--no-read", action="store_true", help="never read a request body")
    p.add_argument("--slow-read", type=float, default=0.0, help="read a request body at this many bytes/s")
    p.add_argument("--slow-read-until", type=int, default=0, help="... until this many bytes, then at full speed")
    p.add_argument("--read-chunk", type=int, default=65536)
    p.add_argument("--pacing", type=int, default=0, help="SO_MAX_PACING_RATE of each connection, bytes/s")

    p = sub.add_parser("http-client")
    p.add_argument("--host", default="10.77.0.2")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--paths", default="/")
    p.add_argument("--parallel", type=int, default=1, help="K connections at once, one path each")
    p.add_argument("--keepalive", action="store_true", help="all paths over one connection")
    p.add_argument("--wait", type=float, default=0.0, help="seconds between the handshake and the request")
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--post", type=int, default=0, help="POST a body of this many bytes")
    p.add_argument("--rcvbuf", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0)

    p = sub.add_parser("connect")
    p.add_argument("--host", default="10.77.0.2")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port-step", action="store_true", help="connect i goes to port+i")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=5.0)

    p = sub.add_parser("dns-server")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--delay-min", type=float, default=0.0)
    p.add_argument("--delay-max", type=float, default=0.0)
    p.add_argument("--drop-pct", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)

    p = sub.add_parser("dns-client")
    p.add_argument("--server", default="10.77.0.2")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--names", required=True)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--retries", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)

    p = sub.add_parser("rtp-send")
    p.add_argument("--host", default="10.77.0.1")
    p.add_argument("--port", type=int, default=40000)
    p.add_argument("--bind", default="")
    p.add_argument("--sport", type=int, default=40002)
    p.add_argument("--count", type=int, default=250)
    p.add_argument("--ptime", type=float, default=0.02)
    p.add_argument("--payload", type=int, default=172, help="UDP payload bytes, RTP header included")
    p.add_argument("--pt", type=int, default=0)
    p.add_argument("--ssrc", type=lambda v: int(v, 0), default=0x5CA1AB1E)
    p.add_argument("--seq", type=int, default=4242)
    p.add_argument("--ts", type=int, default=160000)
    p.add_argument("--start-after", type=float, default=0.0, help="seconds between binding and the first packet")
    p.add_argument("--linger", type=float, default=0.5, help="seconds the socket stays bound after the last packet")

    p = sub.add_parser("udp-sink")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=40000)
    p.add_argument("--duration", type=float, default=10.0)

    p = sub.add_parser("udp-probe")
    p.add_argument("--host", default="10.77.0.2")
    p.add_argument("--ports", default="8125", help="ports or ranges, comma-separated, used in turn")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--message", default="app.requests:1|c #%d")
    p.add_argument("--interval", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=1.0)

    a = ap.parse_args()
    {"http-server": http_server, "http-client": http_client, "connect": connect,
     "dns-server": dns_server, "dns-client": dns_client, "rtp-send": rtp_send,
     "udp-sink": udp_sink, "udp-probe": udp_probe}[a.cmd](a)


if __name__ == "__main__":
    main()
