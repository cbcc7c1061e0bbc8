//! Frames recorded twice. A capture taken on a span port that sees both directions of a VLAN,
//! on two interfaces at once, or merged from overlapping files holds copies of the same frame:
//! the IP identification, the header checksum and the transport checksum are unchanged. A
//! segment that a sender really sent again carries a new IP identification (and new TCP
//! timestamps), so these copies are not retransmissions, and the diagnosis says so.
//!
//! The engine fingerprints every IP packet and remembers [`REMEMBERED`] recent fingerprints
//! (a fixed 2 MiB table, whatever the capture): a packet whose fingerprint is there, recorded
//! within [`WINDOW_NS`] of its original by the capture's own clock, is a copy. A file holding
//! the same trace twice (time jumps back and frames repeat with their original timestamps) is
//! found the same way, as long as the original is still remembered.
//!
//! The table is two-way set-associative, a bucket per cache line, indexed by the fingerprint:
//! one memory access per packet. A hash map with a ring of the order of arrival took three
//! (look up, forget the oldest, insert), 10 % of the engine's time on the 1 GB benchmark.
//! The table is larger than a core's L2 cache, so that one access waited for memory, two
//! thirds of the reading thread's own work per frame: the engine fingerprints a packet as it
//! queues it, and checks a batch's fingerprints at once, each bucket prefetched
//! the batch's prefetch distance ahead ([`Dedup::prefetch`]).

use std::hash::Hasher;

use crate::decode::{Network, Packet, Transport};

/// Fingerprints remembered: two per bucket; a new one takes the place of the older of its
/// bucket.
pub const REMEMBERED: usize = 1 << 16;
/// Copies are recorded within this time of the original (ns, either way).
pub const WINDOW_NS: i64 = 1_000_000_000;
/// Without an IPv4 identification (IPv6, or a sender that leaves it 0 on unfragmentable
/// packets), a segment sent again with the same headers is identical to a copy; only a copy
/// follows its original this closely (a retransmission waits at least for duplicate ACKs).
pub const UNNUMBERED_WINDOW_NS: i64 = 2_000_000;

/// What tells a copy from a new transmission, and how close in time a copy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    hash: u64,
    /// The packet carries an IPv4 identification ([`WINDOW_NS`]; else [`UNNUMBERED_WINDOW_NS`]).
    numbered: bool,
}

/// The packet's fingerprint: what a copy keeps and a new transmission changes. `None` for
/// packets that carry nothing to tell a copy by (IPv6 without TCP or UDP checksum, IPv4 with a
/// zero identification and no transport checksum).
pub fn fingerprint(pkt: &Packet<'_>) -> Option<Fingerprint> {
    let Network::Ip(ip) = &pkt.network else {
        return None;
    };
    let mut h = Mix::default();
    match (ip.src, ip.dst) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            h.write_u64(u64::from(u32::from(a)) << 32 | u64::from(u32::from(b)));
        }
        (a, b) => {
            h.write_u128(crate::analyzers::security::addr_key(a));
            h.write_u128(crate::analyzers::security::addr_key(b));
        }
    }
    h.write_u64(
        u64::from(ip.ident) << 48
            | u64::from(ip.checksum) << 32
            | u64::from(ip.proto) << 24
            | u64::from(ip.payload_wire_len & 0xff_ffff),
    );
    let transport = match &pkt.transport {
        Transport::Tcp(t) => {
            h.write_u64(u64::from(t.seq) << 32 | u64::from(t.ack));
            h.write_u64(u64::from(t.checksum) << 16 | u64::from(t.flags));
            true
        }
        Transport::Udp(u) => {
            h.write_u64(u64::from(u.src_port) << 16 | u64::from(u.dst_port));
            !u.payload.is_empty()
        }
        _ => false,
    };
    let v4_identified = !ip.is_v6() && ip.ident != 0;
    (transport || v4_identified).then(|| Fingerprint {
        hash: h.finish(),
        numbered: v4_identified,
    })
}

/// One remembered packet (`frame` 0: an empty way).
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    fingerprint: u64,
    ts: i64,
    frame: u64,
}

/// Two ways, one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([Seen; 2]);

/// The duplicate detector the engine runs on every IP packet.
pub struct Dedup {
    buckets: Vec<Bucket>,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            buckets: vec![Bucket::default(); REMEMBERED / 2],
        }
    }
}

impl Dedup {
    /// The frame this packet copies, if it is a copy (and remembers it either way).
    pub fn check(&mut self, pkt: &Packet<'_>) -> Option<u64> {
        self.check_fingerprint(fingerprint(pkt)?, pkt.ts_ns, pkt.number)
    }

    /// The frame that a packet of this fingerprint, recorded at `ts` as `frame`, copies, if
    /// it is a copy (and remembers it either way). Packets are checked in capture order.
    pub fn check_fingerprint(
        &mut self,
        fingerprint: Fingerprint,
        ts: i64,
        frame: u64,
    ) -> Option<u64> {
        let fp = fingerprint.hash;
        let window = if fingerprint.numbered {
            WINDOW_NS
        } else {
            UNNUMBERED_WINDOW_NS
        };
        let index = self.bucket(fp);
        let ways = &mut self.buckets[index].0;
        let same = ways
            .iter()
            .position(|w| w.frame != 0 && w.fingerprint == fp);
        if let Some(i) = same {
            if (ts - ways[i].ts).abs() <= window {
                return Some(ways[i].frame);
            }
        }
        // The same fingerprint long ago, else the older way, makes room.
        let slot = same.unwrap_or(usize::from(ways[1].frame < ways[0].frame));
        ways[slot] = Seen {
            fingerprint: fp,
            ts,
            frame,
        };
        None
    }

    /// Starts loading the bucket of a fingerprint checked soon into the CPU cache.
    pub fn prefetch(&self, fingerprint: Fingerprint) {
        crate::flow::prefetch(&self.buckets[self.bucket(fingerprint.hash)]);
    }

    fn bucket(&self, fp: u64) -> usize {
        (fp >> 32) as usize & (self.buckets.len() - 1)
    }
}

/// A small multiply-xorshift mixer for fingerprints.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(v));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}
