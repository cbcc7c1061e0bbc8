//! Frame decoding: link layer (Ethernet with 802.1Q/QinQ, Linux SLL/SLL2, RAW, NULL/loopback),
//! IPv4/IPv6 with extension headers and fragments, TCP/UDP/ICMP/ICMPv6.
//!
//! Headers are sliced with `etherparse`'s lax slicer, so frames cut by the snap length or with an
//! IPv4 total length of 0 (BIG TCP, RFC 2675 jumbograms) still count for the layers they show.
//! The Linux SLL header is read here: etherparse rejects ARPHRD 772 (loopback, what
//! `tcpdump -i any` writes) and 512 (PPP).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ipv6ExtensionSlice, LaxNetSlice, LaxSlicedPacket, LenSource, LinkSlice,
    TransportSlice,
};

use crate::capture::Frame;

pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW_OPENBSD: u32 = 12;
    pub const RAW_BSDOS: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;

/// Linux cooked capture v1 header length (16 bytes, protocol at offset 14).
const SLL_HEADER_BYTES: usize = 16;
/// Linux cooked capture v2 header length (20 bytes, protocol at offset 0).
const SLL2_HEADER_BYTES: usize = 20;
/// Most SACK blocks that fit in 40 bytes of TCP options (RFC 2018).
pub const MAX_SACK_BLOCKS: usize = 4;

/// Network layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    None,
    Arp,
    Ip(IpInfo),
}

/// Fragment fields of an IPv4 header or IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// Offset in bytes.
    pub offset: u32,
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    pub ttl: u8,
    pub fragment: Option<Fragment>,
    /// Payload length on the wire, from the header (or from the frame length when the header
    /// says 0, as BIG TCP and jumbograms do).
    pub payload_wire_len: u32,
}

impl IpInfo {
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// FIN, SYN, RST, PSH, ACK, URG bits as in the header's low byte.
    pub flags: u8,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Segment length on the wire (payload bytes, from the IP length).
    pub seg_len: u32,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// Number of SACK blocks in this segment and the first (left, right) edges.
    pub sack_blocks: u8,
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    /// The header was cut before its end: only the ports (and maybe more) are known.
    pub header_incomplete: bool,
}

impl TcpInfo {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpInfo<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Captured payload bytes.
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo<'a> {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// Bytes after the 8-byte ICMP header (for errors: the quoted datagram).
    pub payload: &'a [u8],
    /// Bytes 4..8 of the header (identifier/sequence, or next-hop MTU for "fragmentation needed").
    pub rest_of_header: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    None,
    Tcp(TcpInfo),
    /// Payload is held for DNS parsing.
    Udp(UdpInfo<'a>),
    Icmp(IcmpInfo<'a>),
    /// Another IP protocol, or a non-first fragment (the protocol number is in `IpInfo`).
    Other,
}

/// A decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub number: u64,
    pub ts_ns: i64,
    /// False when the capture gave no timestamp (pcapng simple packet blocks).
    pub ts_known: bool,
    pub wire_len: u32,
    pub cap_len: u32,
    pub vlan: bool,
    pub network: Network,
    pub transport: Transport<'a>,
    /// TCP payload bytes as captured (for DNS over TCP).
    pub tcp_payload: &'a [u8],
}

impl<'a> Packet<'a> {
    pub fn ip(&self) -> Option<&IpInfo> {
        match &self.network {
            Network::Ip(ip) => Some(ip),
            _ => None,
        }
    }
    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }
    pub fn udp(&self) -> Option<&UdpInfo<'a>> {
        match &self.transport {
            Transport::Udp(u) => Some(u),
            _ => None,
        }
    }
    pub fn icmp(&self) -> Option<&IcmpInfo<'a>> {
        match &self.transport {
            Transport::Icmp(i) => Some(i),
            _ => None,
        }
    }
    pub fn ts_secs(&self) -> f64 {
        self.ts_ns as f64 / 1e9
    }
}

/// Decodes one frame. Never fails: what cannot be decoded is left as `Network::None` or
/// `Transport::None`.
pub fn decode<'a>(frame: &Frame<'a>) -> Packet<'a> {
    let mut pkt = Packet {
        number: frame.number,
        ts_ns: frame.ts_ns,
        ts_known: frame.ts_known,
        wire_len: frame.wire_len,
        cap_len: frame.data.len() as u32,
        vlan: false,
        network: Network::None,
        transport: Transport::None,
        tcp_payload: &[],
    };
    let data = frame.data;
    let sliced = match frame.linktype {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
        linktype::RAW
        | linktype::RAW_OPENBSD
        | linktype::RAW_BSDOS
        | linktype::IPV4
        | linktype::IPV6 => LaxSlicedPacket::from_ip(data).ok(),
        linktype::NULL | linktype::LOOP => null_family(data)
            .and_then(|_| data.get(4..))
            .and_then(|ip| LaxSlicedPacket::from_ip(ip).ok()),
        linktype::LINUX_SLL => cooked(data, SLL_HEADER_BYTES, 14),
        linktype::LINUX_SLL2 => cooked(data, SLL2_HEADER_BYTES, 0),
        _ => None,
    };
    let Some(sliced) = sliced else {
        return pkt;
    };
    let ether_type = link_ether_type(&sliced);
    pkt.vlan = !sliced.link_exts.is_empty();
    match &sliced.net {
        Some(LaxNetSlice::Arp(_)) => pkt.network = Network::Arp,
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let payload = v4.payload();
            let header_len = u32::from(h.ihl()) * 4;
            let payload_wire_len = if h.total_len() == 0 || payload.len_source == LenSource::Slice {
                wire_payload_len(frame, payload.payload)
            } else {
                u32::from(h.total_len()).saturating_sub(header_len)
            };
            let fragment =
                (h.more_fragments() || h.fragments_offset().value() != 0).then(|| Fragment {
                    id: u32::from(h.identification()),
                    offset: u32::from(h.fragments_offset().value()) * 8,
                    more: h.more_fragments(),
                });
            pkt.network = Network::Ip(IpInfo {
                src: IpAddr::V4(Ipv4Addr::from(h.source())),
                dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
                proto: payload.ip_number.0,
                ttl: h.ttl(),
                fragment,
                payload_wire_len,
            });
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let payload = v6.payload();
            let mut fragment = None;
            for ext in v6.extensions().clone().into_iter() {
                if let Ipv6ExtensionSlice::Fragment(f) = ext {
                    fragment = Some(Fragment {
                        id: f.identification(),
                        offset: u32::from(f.fragment_offset().value()) * 8,
                        more: f.more_fragments(),
                    });
                }
            }
            let ext_len = v6.extensions().slice().len() as u32;
            let payload_wire_len =
                if h.payload_length() == 0 || payload.len_source == LenSource::Slice {
                    wire_payload_len(frame, payload.payload)
                } else {
                    u32::from(h.payload_length()).saturating_sub(ext_len)
                };
            pkt.network = Network::Ip(IpInfo {
                src: IpAddr::V6(Ipv6Addr::from(h.source())),
                dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
                proto: payload.ip_number.0,
                ttl: h.hop_limit(),
                fragment,
                payload_wire_len,
            });
        }
        None => {
            if ether_type == Some(EtherType::ARP) {
                pkt.network = Network::Arp;
            }
            return pkt;
        }
    }
    let Network::Ip(ip) = pkt.network else {
        return pkt;
    };
    if ip.fragment.is_some_and(|f| f.offset != 0) {
        pkt.transport = Transport::Other;
        return pkt;
    }
    let ip_payload = sliced
        .net
        .as_ref()
        .and_then(|n| n.ip_payload_ref())
        .map(|p| p.payload)
        .unwrap_or(&[]);
    pkt.transport = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            let hdr = u32::from(t.data_offset()) * 4;
            pkt.tcp_payload = t.payload();
            let mut info = TcpInfo {
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: t.header_slice().get(13).copied().unwrap_or(0),
                window: t.window_size(),
                seg_len: ip.payload_wire_len.saturating_sub(hdr),
                ..TcpInfo::default()
            };
            parse_tcp_options(t.options(), &mut info);
            Transport::Tcp(info)
        }
        Some(TransportSlice::Udp(u)) => Transport::Udp(UdpInfo {
            src_port: u.source_port(),
            dst_port: u.destination_port(),
            payload: u.payload(),
        }),
        Some(TransportSlice::Icmpv4(i)) => Transport::Icmp(icmp_info(false, i.slice())),
        Some(TransportSlice::Icmpv6(i)) => Transport::Icmp(icmp_info(true, i.slice())),
        Some(TransportSlice::Igmp(_)) => Transport::Other,
        None => partial_transport(ip.proto, ip_payload, ip.payload_wire_len),
    };
    pkt
}

/// Transport headers cut by the snap length (or fragments whose first piece is short): keep what
/// the captured bytes show, so the packet still counts for its protocol.
fn partial_transport(proto: u8, bytes: &[u8], wire_len: u32) -> Transport<'_> {
    let port = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .unwrap_or(0)
    };
    match proto {
        6 => {
            let u32_at = |o: usize| {
                bytes
                    .get(o..o + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0)
            };
            let hdr = bytes.get(12).map(|b| u32::from(b >> 4) * 4).unwrap_or(20);
            Transport::Tcp(TcpInfo {
                src_port: port(0),
                dst_port: port(2),
                seq: u32_at(4),
                ack: u32_at(8),
                flags: bytes.get(13).copied().unwrap_or(0),
                window: port(14),
                seg_len: wire_len.saturating_sub(hdr.max(20)),
                header_incomplete: true,
                ..TcpInfo::default()
            })
        }
        17 => Transport::Udp(UdpInfo {
            src_port: port(0),
            dst_port: port(2),
            payload: bytes.get(8..).unwrap_or(&[]),
        }),
        1 | 58 if !bytes.is_empty() => Transport::Icmp(icmp_info(proto == 58, bytes)),
        _ => Transport::Other,
    }
}

fn icmp_info(v6: bool, bytes: &[u8]) -> IcmpInfo<'_> {
    let mut rest_of_header = [0u8; 4];
    if let Some(r) = bytes.get(4..8) {
        rest_of_header.copy_from_slice(r);
    }
    IcmpInfo {
        v6,
        icmp_type: bytes.first().copied().unwrap_or(0),
        code: bytes.get(1).copied().unwrap_or(0),
        payload: bytes.get(8..).unwrap_or(&[]),
        rest_of_header,
    }
}

/// Length of an IP payload on the wire when the header does not give it: the frame's wire
/// length minus everything before the payload.
fn wire_payload_len(frame: &Frame<'_>, payload: &[u8]) -> u32 {
    let offset = (payload.as_ptr() as usize).saturating_sub(frame.data.as_ptr() as usize) as u32;
    frame.wire_len.saturating_sub(offset)
}

fn link_ether_type(sliced: &LaxSlicedPacket<'_>) -> Option<EtherType> {
    if let Some(etherparse::LaxLinkExtSlice::Vlan(v)) = sliced.link_exts.last() {
        return Some(v.ether_type());
    }
    match &sliced.link {
        Some(LinkSlice::Ethernet2(e)) => Some(e.ether_type()),
        Some(LinkSlice::EtherPayload(p)) => Some(p.ether_type),
        _ => None,
    }
}

/// Address family of a BSD loopback (NULL/LOOP) header, written in the capturing host's byte
/// order: 2 is IPv4; 24, 28 and 30 are IPv6 on the BSDs and macOS.
fn null_family(data: &[u8]) -> Option<u32> {
    let b = data.get(..4)?;
    let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let family = if le > 0xFFFF {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    } else {
        le
    };
    matches!(family, 2 | 24 | 28 | 30).then_some(family)
}

fn cooked(data: &[u8], header: usize, proto_at: usize) -> Option<LaxSlicedPacket<'_>> {
    let proto = data.get(proto_at..proto_at + 2)?;
    let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
    let rest = data.get(header..)?;
    Some(LaxSlicedPacket::from_ether_type(ether_type, rest))
}

fn parse_tcp_options(mut opts: &[u8], info: &mut TcpInfo) {
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => {
                opts = &opts[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(1) else { break };
        let len = len as usize;
        if len < 2 || len > opts.len() {
            break;
        }
        let body = &opts[2..len];
        match (kind, body.len()) {
            (2, 2) => info.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            (3, 1) => info.wscale = Some(body[0]),
            (4, 0) => info.sack_permitted = true,
            (5, n) if n % 8 == 0 => {
                for (i, block) in body.chunks_exact(8).take(MAX_SACK_BLOCKS).enumerate() {
                    let l = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
                    let r = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                    info.sack[i] = (l, r);
                    info.sack_blocks = (i + 1) as u8;
                }
            }
            _ => {}
        }
        opts = &opts[len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_family_reads_either_byte_order() {
        assert_eq!(null_family(&[2, 0, 0, 0]), Some(2));
        assert_eq!(null_family(&[0, 0, 0, 30]), Some(30));
        assert_eq!(null_family(&[7, 0, 0, 0]), None);
    }

    #[test]
    fn tcp_options_give_mss_wscale_and_sack() {
        let opts = [
            2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9,
        ];
        let mut info = TcpInfo::default();
        parse_tcp_options(&opts, &mut info);
        assert_eq!(info.mss, Some(1460));
        assert_eq!(info.wscale, Some(7));
        assert!(info.sack_permitted);
        assert_eq!(info.sack_blocks, 1);
        assert_eq!(info.sack[0], (1, 9));
    }
}
