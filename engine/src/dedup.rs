//! Frames recorded twice. A capture taken on a span port that sees both directions of a VLAN,
//! on two interfaces at once, or merged from overlapping files holds copies of the same frame:
//! the IP identification, the header checksum and the transport checksum are unchanged. A
//! segment that a sender really sent again carries a new IP identification (and new TCP
//! timestamps), so these copies are not retransmissions, and the diagnosis says so.
//!
//! The engine fingerprints every IP packet and remembers the last [`REMEMBERED`] fingerprints
//! (a fixed 1 MiB ring, whatever the capture): a packet whose fingerprint is there, recorded
//! within [`WINDOW_NS`] of its original by the capture's own clock, is a copy. A file holding
//! the same trace twice (time jumps back and frames repeat with their original timestamps) is
//! found the same way, as long as the copy lies within the ring.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::decode::{Network, Packet, Transport};

/// Fingerprints remembered (the most recent ones).
pub const REMEMBERED: usize = 1 << 15;
/// Copies are recorded within this time of the original (ns, either way).
pub const WINDOW_NS: i64 = 1_000_000_000;
/// Without an IPv4 identification (IPv6, or a sender that leaves it 0 on unfragmentable
/// packets), a segment sent again with the same headers is identical to a copy; only a copy
/// follows its original this closely (a retransmission waits at least for duplicate ACKs).
pub const UNNUMBERED_WINDOW_NS: i64 = 2_000_000;

/// The packet's fingerprint: what a copy keeps and a new transmission changes. `None` for
/// packets that carry nothing to tell a copy by (IPv6 without TCP or UDP checksum, IPv4 with a
/// zero identification and no transport checksum).
pub fn fingerprint(pkt: &Packet<'_>) -> Option<(u64, bool)> {
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
    (transport || v4_identified).then(|| (h.finish(), v4_identified))
}

/// The duplicate detector the engine runs on every IP packet.
pub struct Dedup {
    /// Fingerprint → (timestamp, frame) of its latest sighting.
    seen: HashMap<u64, (i64, u64), BuildHasherDefault<Identity>>,
    /// Fingerprints in arrival order, to forget the oldest.
    ring: Vec<u64>,
    next: usize,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            seen: HashMap::with_capacity_and_hasher(REMEMBERED, Default::default()),
            ring: Vec::with_capacity(REMEMBERED),
            next: 0,
        }
    }
}

impl Dedup {
    /// The frame this packet copies, if it is a copy (and remembers it either way).
    pub fn check(&mut self, pkt: &Packet<'_>) -> Option<u64> {
        let (fp, numbered) = fingerprint(pkt)?;
        let window = if numbered {
            WINDOW_NS
        } else {
            UNNUMBERED_WINDOW_NS
        };
        if let Some(&(ts, frame)) = self.seen.get(&fp) {
            if (pkt.ts_ns - ts).abs() <= window {
                return Some(frame);
            }
        }
        if self.ring.len() < REMEMBERED {
            self.ring.push(fp);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], fp);
            self.seen.remove(&old);
            self.next = (self.next + 1) % REMEMBERED;
        }
        self.seen.insert(fp, (pkt.ts_ns, pkt.number));
        None
    }
}

/// The fingerprint is already well mixed: the map uses it as its own hash.
#[derive(Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
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
