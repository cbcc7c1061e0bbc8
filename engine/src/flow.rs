//! Flow keys and the conversation tables.
//!
//! A [`FlowKey`] is symmetric: both directions of a conversation give the same key, and the
//! [`Direction`] says which way a packet went. The tables are bounded: past
//! [`MAX_TRACKED_FLOWS`] entries, flows idle for longer than [`IDLE_EVICTION_NS`] are dropped, so
//! memory follows the number of live flows, never the file size.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Packet;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// Flows tracked at once before idle ones are evicted. Captures with fewer live flows are
/// counted exactly like tshark, which never evicts; larger ones stay within memory.
pub const MAX_TRACKED_FLOWS: usize = 400_000;
/// A flow without packets for this long (capture time) may be evicted once the table is full.
pub const IDLE_EVICTION_NS: i64 = 120 * 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Lower (address, port) endpoint.
    pub a: IpAddr,
    pub a_port: u16,
    /// Higher (address, port) endpoint.
    pub b: IpAddr,
    pub b_port: u16,
    pub proto: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From `a` to `b`.
    AtoB,
    /// From `b` to `a`.
    BtoA,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }
}

impl FlowKey {
    pub fn new(
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
        proto: u8,
    ) -> (Self, Direction) {
        if (src, src_port) <= (dst, dst_port) {
            let key = FlowKey {
                a: src,
                a_port: src_port,
                b: dst,
                b_port: dst_port,
                proto,
            };
            (key, Direction::AtoB)
        } else {
            let key = FlowKey {
                a: dst,
                a_port: dst_port,
                b: src,
                b_port: src_port,
                proto,
            };
            (key, Direction::BtoA)
        }
    }

    /// Key of a packet's 5-tuple (ports are 0 for protocols without ports).
    pub fn of_packet(pkt: &Packet<'_>) -> Option<(Self, Direction)> {
        let ip = pkt.ip()?;
        let (sp, dp) = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => (t.src_port, t.dst_port),
            (_, Some(u)) => (u.src_port, u.dst_port),
            _ => (0, 0),
        };
        Some(FlowKey::new(ip.src, sp, ip.dst, dp, ip.proto))
    }

    /// Source and destination of a direction as "addr:port".
    pub fn endpoints(&self, dir: Direction) -> (String, String) {
        let a = endpoint(self.a, self.a_port);
        let b = endpoint(self.b, self.b_port);
        match dir {
            Direction::AtoB => (a, b),
            Direction::BtoA => (b, a),
        }
    }

    /// Source and destination of a direction.
    pub fn oriented(&self, dir: Direction) -> (IpAddr, u16, IpAddr, u16) {
        match dir {
            Direction::AtoB => (self.a, self.a_port, self.b, self.b_port),
            Direction::BtoA => (self.b, self.b_port, self.a, self.a_port),
        }
    }

    /// A Wireshark display filter that selects this conversation.
    pub fn display_filter(&self) -> String {
        let ip = |a: &IpAddr| if a.is_ipv6() { "ipv6.addr" } else { "ip.addr" };
        let proto = match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => "",
        };
        if proto.is_empty() {
            format!(
                "{} == {} && {} == {}",
                ip(&self.a),
                self.a,
                ip(&self.b),
                self.b
            )
        } else {
            format!(
                "{} == {} && {}.port == {} && {} == {} && {}.port == {}",
                ip(&self.a),
                self.a,
                proto,
                self.a_port,
                ip(&self.b),
                self.b,
                proto,
                self.b_port
            )
        }
    }
}

pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Removes idle entries when `map` is over [`MAX_TRACKED_FLOWS`]; returns how many went.
pub fn evict_idle<K: Eq + std::hash::Hash, V>(
    map: &mut FastMap<K, V>,
    now_ns: i64,
    last_seen: impl Fn(&V) -> i64,
) -> usize {
    if map.len() < MAX_TRACKED_FLOWS {
        return 0;
    }
    let before = map.len();
    let mut horizon = IDLE_EVICTION_NS;
    // Shrink the idle horizon until at least a quarter of the table is free, so a capture with
    // more live flows than the cap still makes progress instead of sweeping on every packet.
    while map.len() > MAX_TRACKED_FLOWS * 3 / 4 && horizon > 0 {
        map.retain(|_, v| now_ns.saturating_sub(last_seen(v)) < horizon);
        horizon /= 2;
    }
    before - map.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_give_the_same_key() {
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let (k1, d1) = FlowKey::new(x, 1234, y, 80, 6);
        let (k2, d2) = FlowKey::new(y, 80, x, 1234, 6);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
    }
}
