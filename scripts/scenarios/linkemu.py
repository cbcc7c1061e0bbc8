#!/usr/bin/env python3
"""A user-space link emulator between two network namespaces.

Opens two TAP devices, moves one into the client namespace and one into the server
namespace, addresses them, and forwards Ethernet frames both ways through a scheduler
that applies per-direction impairments: fixed delay, jitter (optionally keeping order),
random and burst loss, reordering, duplication, a rate limit with a bounded tail-drop
queue, a blackholed TCP/UDP port and an MTU black hole.

Every impairment option exists in three spellings: `--delay 10` applies to both
directions, `--c2s-delay 10` only to client->server frames and `--s2c-delay 10` only to
server->client frames (a direction-specific value wins). Delays are one-way, in ms.

Only IP frames are impaired; other frames (there should be none: neighbours are static)
pass with the fixed delay only. Stdlib only; one thread, select() and a heap of release
times. The RNG is seeded (`--seed`), so a scenario has the same shape on every run.
"""

import argparse
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000

CLIENT_MAC = "02:77:00:00:00:01"
SERVER_MAC = "02:77:00:00:00:02"

IMPAIRMENTS = [
    # name, type, default, help
    ("delay", float, 0.0, "fixed one-way delay, ms"),
    ("jitter", float, 0.0, "extra random delay, uniform in [jitter-min, jitter] ms"),
    ("jitter-min", float, 0.0, "lower bound of the extra random delay, ms"),
    ("keep-order", int, 0, "1: jitter never reorders frames (a frame waits for the previous one)"),
    ("loss", float, 0.0, "random loss, percent of frames"),
    ("burst-loss", float, 0.0, "percent of frames that start a loss burst"),
    ("burst-len", int, 4, "frames dropped per loss burst (the starting one included)"),
    ("reorder", float, 0.0, "percent of frames held back so later ones overtake them"),
    ("reorder-hold", float, 5.0, "how long a reordered frame is held back, ms"),
    ("dup", float, 0.0, "percent of frames emitted twice, 0.1 ms apart"),
    ("rate", float, 0.0, "rate limit in bytes/s (0: unlimited)"),
    ("queue", int, 64 * 1024, "rate limiter queue in bytes; frames that do not fit are dropped"),
    ("blackhole-port", int, 0, "drop TCP/UDP frames from or to this port silently"),
    ("mtu-drop", int, 0, "drop IP frames whose IP packet is larger than this, no ICMP"),
]


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def sh(*args, check=True):
    subprocess.run(list(args), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def configure(tap, ns, mac, v4, v6, peer_mac, peer_v4, peer_v6, mtu):
    sh("ip", "link", "set", tap, "netns", ns)
    sh("ip", "-n", ns, "link", "set", tap, "address", mac)
    sh("ip", "-n", ns, "link", "set", tap, "mtu", str(mtu))
    sysctls = [
        f"net.ipv6.conf.{tap}.accept_ra=0",
        f"net.ipv6.conf.{tap}.router_solicitations=0",
        f"net.ipv6.conf.{tap}.accept_dad=0",
        f"net.ipv6.conf.{tap}.addr_gen_mode=1",
    ]
    for s in sysctls:
        sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", s, check=False)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", tap)
    sh("ip", "-n", ns, "-6", "addr", "add", v6 + "/64", "dev", tap, "nodad")
    sh("ip", "-n", ns, "link", "set", tap, "up")
    sh("ip", "-n", ns, "neigh", "replace", peer_v4, "lladdr", peer_mac, "dev", tap, "nud", "permanent")
    sh("ip", "-n", ns, "-6", "neigh", "replace", peer_v6, "lladdr", peer_mac, "dev", tap, "nud", "permanent")
    # TAP without IFF_VNET_HDR has no GSO/TSO; say so explicitly where ethtool exists.
    sh("ip", "netns", "exec", ns, "ethtool", "-K", tap, "tso", "off", "gso", "off", "gro", "off", check=False)


def parse_ip(frame):
    """(ip packet length, l4 protocol, src port, dst port) or None for non-IP frames."""
    if len(frame) < 14:
        return None
    etype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if etype == 0x8100 and len(frame) >= 18:
        etype = struct.unpack_from("!H", frame, 16)[0]
        off = 18
    if etype == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        total = struct.unpack_from("!H", frame, off + 2)[0]
        proto = frame[off + 9]
        l4 = off + ihl
    elif etype == 0x86DD and len(frame) >= off + 40:
        total = 40 + struct.unpack_from("!H", frame, off + 4)[0]
        proto = frame[off + 6]
        l4 = off + 40
        if proto == 58 and len(frame) > l4 and 133 <= frame[l4] <= 137:
            return None  # neighbour discovery: treat like ARP
    else:
        return None
    sport = dport = 0
    if proto in (6, 17) and len(frame) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", frame, l4)
    return total, proto, sport, dport


class Direction:
    def __init__(self, name, p, rng, out_fd):
        self.name = name
        self.p = p
        self.rng = rng
        self.out_fd = out_fd
        self.burst_left = 0
        self.link_free = 0.0  # when the rate-limited link finishes the last queued frame
        self.queued = deque()  # (departure time, size) of frames in the rate limiter
        self.queued_bytes = 0
        self.last_release = 0.0
        self.stats = dict(frames=0, lost=0, burst=0, reordered=0, dup=0, tail=0, port=0, mtu=0)

    def chance(self, pct):
        return pct > 0 and self.rng.random() * 100.0 < pct

    def schedule(self, frame, now, push):
        p, st = self.p, self.stats
        st["frames"] += 1
        info = parse_ip(frame)
        base = now + p["delay"] / 1000.0
        if info is None:
            push(max(base, self.last_release), self.out_fd, frame)
            return
        total, proto, sport, dport = info
        bp = p["blackhole-port"]
        if bp and proto in (6, 17) and bp in (sport, dport):
            st["port"] += 1
            return
        if p["mtu-drop"] and total > p["mtu-drop"]:
            st["mtu"] += 1
            return
        if self.burst_left > 0:
            self.burst_left -= 1
            st["burst"] += 1
            return
        if self.chance(p["burst-loss"]):
            self.burst_left = max(0, p["burst-len"] - 1)
            st["burst"] += 1
            return
        if self.chance(p["loss"]):
            st["lost"] += 1
            return
        depart = now
        if p["rate"] > 0:
            while self.queued and self.queued[0][0] <= now:
                self.queued_bytes -= self.queued.popleft()[1]
            if self.queued_bytes + len(frame) > p["queue"]:
                st["tail"] += 1
                return
            depart = max(now, self.link_free) + len(frame) / p["rate"]
            self.link_free = depart
            self.queued.append((depart, len(frame)))
            self.queued_bytes += len(frame)
        release = depart + p["delay"] / 1000.0
        if p["jitter"] > 0:
            release += self.rng.uniform(p["jitter-min"], p["jitter"]) / 1000.0
        if p["keep-order"] or p["rate"] > 0:
            release = max(release, self.last_release)
        if self.chance(p["reorder"]):
            st["reordered"] += 1
            push(release + p["reorder-hold"] / 1000.0, self.out_fd, frame)
        else:
            self.last_release = release
            push(release, self.out_fd, frame)
        if self.chance(p["dup"]):
            st["dup"] += 1
            push(release + 0.0001, self.out_fd, frame)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client-ns", default="pa-cli")
    ap.add_argument("--server-ns", default="pa-srv")
    ap.add_argument("--client-tap", default="pa-tap-c")
    ap.add_argument("--server-tap", default="pa-tap-s")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ready", help="file to create once both TAPs are up and addressed")
    for name, typ, default, hlp in IMPAIRMENTS:
        ap.add_argument("--" + name, type=typ, default=None, help=f"{hlp} (default {default})")
        for d in ("c2s", "s2c"):
            ap.add_argument(f"--{d}-{name}", type=typ, default=None, help=argparse.SUPPRESS)
    a = vars(ap.parse_args())

    def params(d):
        out = {}
        for name, _typ, default, _h in IMPAIRMENTS:
            key = name.replace("-", "_")
            v = a.get(f"{d}_{key}")
            if v is None:
                v = a.get(key)
            out[name] = default if v is None else v
        return out

    cfd = open_tap(a["client_tap"])
    sfd = open_tap(a["server_tap"])
    configure(a["client_tap"], a["client_ns"], CLIENT_MAC, "10.77.0.1", "fd77::1",
              SERVER_MAC, "10.77.0.2", "fd77::2", a["mtu"])
    configure(a["server_tap"], a["server_ns"], SERVER_MAC, "10.77.0.2", "fd77::2",
              CLIENT_MAC, "10.77.0.1", "fd77::1", a["mtu"])

    rng = random.Random(a["seed"])
    c2s = Direction("c2s", params("c2s"), random.Random(rng.random()), sfd)
    s2c = Direction("s2c", params("s2c"), random.Random(rng.random()), cfd)
    heap = []
    seq = [0]

    def push(t, fd, frame):
        seq[0] += 1
        heapq.heappush(heap, (t, seq[0], fd, frame))

    stop = [False]

    def on_signal(_sig, _frm):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if a["ready"]:
        with open(a["ready"], "w") as f:
            f.write(str(os.getpid()) + "\n")
    sources = {cfd: c2s, sfd: s2c}
    write_errors = [0]
    while not stop[0]:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _t, _s, fd, frame = heapq.heappop(heap)
            try:
                os.write(fd, frame)
            except OSError:
                write_errors[0] += 1  # never seen so far; reported so it cannot pass unnoticed
        timeout = 0.2 if not heap else max(0.0, heap[0][0] - time.monotonic())
        try:
            readable, _, _ = select.select([cfd, sfd], [], [], min(timeout, 0.2))
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            for _ in range(64):
                try:
                    frame = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if not frame:
                    break
                sources[fd].schedule(frame, now, push)
    for d in (c2s, s2c):
        print(f"linkemu {d.name}: " + " ".join(f"{k}={v}" for k, v in d.stats.items()), file=sys.stderr)
    if write_errors[0]:
        print(f"linkemu: {write_errors[0]} frames could not be written", file=sys.stderr)


if __name__ == "__main__":
    main()
