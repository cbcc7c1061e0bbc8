//! Frame decoding: link layer (Ethernet with 802.1Q/QinQ, Linux SLL/SLL2, RAW, NULL/loopback),
//! IPv4/IPv6 with extension headers and fragments, TCP/UDP/ICMP/ICMPv6.
//!
//! Headers are sliced with `etherparse`'s lax slicer, so frames cut by the snap length or with an
//! IPv4 total length of 0 (BIG TCP, RFC 2675 jumbograms) still count for the layers they show.
//! The Linux SLL header is read here: etherparse rejects ARPHRD 772 (loopback, what
//! `tcpdump -i any` writes) and 512 (PPP).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, LenSource, LinkSlice, TransportSlice};

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

/// Bits of a pcap link type field that hold the link type (libpcap's `LT_LINKTYPE`).
pub const LINKTYPE_MASK: u32 = 0xFFFF;
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
    /// ARP; the fields when the packet is Ethernet/IPv4 ARP (RFC 826) and complete.
    Arp(Option<ArpInfo>),
    Ip(IpInfo),
}

/// An Ethernet/IPv4 ARP packet (RFC 826): who claims which address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpInfo {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpInfo {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;

    /// A gratuitous ARP announces the sender's own address (sender IP = target IP).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Reads Ethernet/IPv4 ARP fields (hardware size 6, protocol size 4).
fn arp_info(a: &etherparse::ArpPacketSlice<'_>) -> Option<ArpInfo> {
    if a.hw_addr_size() != 6 || a.proto_addr_size() != 4 || a.proto_addr_type() != EtherType::IPV4 {
        return None;
    }
    let mac = |b: &[u8]| <[u8; 6]>::try_from(b).ok();
    let ip = |b: &[u8]| <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from);
    Some(ArpInfo {
        op: a.operation().0,
        sender_mac: mac(a.sender_hw_addr())?,
        sender_ip: ip(a.sender_protocol_addr())?,
        target_mac: mac(a.target_hw_addr())?,
        target_ip: ip(a.target_protocol_addr())?,
    })
}

/// A MAC address as Wireshark writes it (`00:26:0b:31:07:33`).
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
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
    /// IPv4 identification and header checksum (0 for IPv6): a frame recorded twice carries
    /// both unchanged, a segment sent again does not (duplicates vs retransmissions).
    pub ident: u16,
    pub checksum: u16,
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
    /// Bytes of the TCP header captured (at most 60).
    pub header_captured: u8,
    pub checksum: u16,
    /// The timestamps option (RFC 7323): TSval, TSecr.
    pub timestamps: Option<(u32, u32)>,
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
    /// Ethernet source and destination MACs (zero without an Ethernet header).
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub network: Network,
    pub transport: Transport<'a>,
    /// TCP payload bytes as captured (for DNS over TCP).
    pub tcp_payload: &'a [u8],
    /// Layers inside a tunnel (VXLAN, Teredo, IP in IP). `network` and `transport` stay the
    /// outer-most ones, as tshark's first `ip.src` is.
    pub inner: Option<Inner>,
}

/// Tunnels decapsulated by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    /// VXLAN (UDP port 4789): inner Ethernet frame.
    Vxlan,
    /// Teredo (UDP port 3544): inner IPv6.
    Teredo,
    /// IPv4 or IPv6 in IP (protocols 4 and 41: IPIP, 6in4, 4in6, 6in6).
    IpInIp,
}

/// Transport layer inside a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerTransport {
    None,
    Tcp {
        src_port: u16,
        dst_port: u16,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMP or ICMPv6.
    Icmp,
    /// Another IP protocol, or a non-first fragment.
    Other,
}

/// The layers of a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    pub tunnel: Tunnel,
    /// `Network::Ip` (addresses, protocol), `Network::Arp`, or `Network::None` when the inner
    /// Ethernet frame carries something else.
    pub network: Network,
    pub transport: InnerTransport,
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

/// The bytes a [`Packet`] borrows from its frame: the TCP payload, and the UDP or ICMP payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Payloads<'a> {
    pub tcp: &'a [u8],
    pub transport: &'a [u8],
}

impl<'a> Packet<'a> {
    /// The packet without the bytes it borrows, and those bytes: what another thread needs to
    /// rebuild it ([`Packet::attach`]) over copies, without decoding the frame again.
    pub fn detach(&self) -> (Packet<'static>, Payloads<'a>) {
        let (transport, transport_payload) = match self.transport {
            Transport::None => (Transport::None, &[][..]),
            Transport::Other => (Transport::Other, &[][..]),
            Transport::Tcp(t) => (Transport::Tcp(t), &[][..]),
            Transport::Udp(u) => (Transport::Udp(UdpInfo { payload: &[], ..u }), u.payload),
            Transport::Icmp(i) => (Transport::Icmp(IcmpInfo { payload: &[], ..i }), i.payload),
        };
        let detached = Packet {
            transport,
            tcp_payload: &[],
            ..*self
        };
        let payloads = Payloads {
            tcp: self.tcp_payload,
            transport: transport_payload,
        };
        (detached, payloads)
    }

    /// A detached packet with its payloads (or copies of them) back in place.
    pub fn attach(detached: &Packet<'static>, payloads: Payloads<'a>) -> Packet<'a> {
        let transport = match detached.transport {
            Transport::None => Transport::None,
            Transport::Other => Transport::Other,
            Transport::Tcp(t) => Transport::Tcp(t),
            Transport::Udp(u) => Transport::Udp(UdpInfo {
                payload: payloads.transport,
                ..u
            }),
            Transport::Icmp(i) => Transport::Icmp(IcmpInfo {
                payload: payloads.transport,
                ..i
            }),
        };
        Packet {
            transport,
            tcp_payload: payloads.tcp,
            ..*detached
        }
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
        eth_src: [0; 6],
        eth_dst: [0; 6],
        network: Network::None,
        transport: Transport::None,
        tcp_payload: &[],
        inner: None,
    };
    let data = frame.data;
    // A pcap header's link type field carries FCS information in its upper bits (LT_FCS_LENGTH,
    // bits 26-31); the link type proper is the low 16 bits, as libpcap and Wireshark read it.
    // `ip_bytes`: where an IP header starts when the link layer says so without a doubt, for the
    // fallback when etherparse rejects the header.
    let (sliced, ip_bytes) = match frame.linktype & LINKTYPE_MASK {
        linktype::ETHERNET => (LaxSlicedPacket::from_ethernet(data).ok(), None),
        linktype::RAW
        | linktype::RAW_OPENBSD
        | linktype::RAW_BSDOS
        | linktype::IPV4
        | linktype::IPV6 => (LaxSlicedPacket::from_ip(data).ok(), Some(data)),
        linktype::NULL | linktype::LOOP => {
            let ip = null_family(data).and_then(|_| data.get(4..));
            (ip.and_then(|ip| LaxSlicedPacket::from_ip(ip).ok()), ip)
        }
        linktype::LINUX_SLL => (cooked(data, SLL_HEADER_BYTES, 14), None),
        linktype::LINUX_SLL2 => (cooked(data, SLL2_HEADER_BYTES, 0), None),
        _ => (None, None),
    };
    let Some(sliced) = sliced else {
        if let Some(bytes) = ip_bytes {
            pkt.network = raw_ipv4(frame, bytes);
        }
        return pkt;
    };
    pkt.vlan = !sliced.link_exts.is_empty();
    if let Some(LinkSlice::Ethernet2(e)) = &sliced.link {
        pkt.eth_src = e.source();
        pkt.eth_dst = e.destination();
    }
    let (network, transport, tcp_payload, ip_payload) = layers(frame, &sliced);
    pkt.network = network;
    pkt.transport = transport;
    pkt.tcp_payload = tcp_payload;
    if let Network::Ip(ip) = &pkt.network {
        pkt.inner = tunnel(frame, ip, &pkt.transport, ip_payload);
    }
    pkt
}

/// Network and transport layers of a sliced packet, the TCP payload, and the IP payload.
fn layers<'a>(
    frame: &Frame<'a>,
    sliced: &LaxSlicedPacket<'a>,
) -> (Network, Transport<'a>, &'a [u8], &'a [u8]) {
    let network = match &sliced.net {
        Some(LaxNetSlice::Arp(a)) => Network::Arp(arp_info(a)),
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
            Network::Ip(IpInfo {
                src: IpAddr::V4(Ipv4Addr::from(h.source())),
                dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
                proto: payload.ip_number.0,
                ttl: h.ttl(),
                fragment,
                payload_wire_len,
                ident: h.identification(),
                checksum: h.header_checksum(),
            })
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let payload = v6.payload();
            // Walked by hand: etherparse's extension iterator trusts lengths its lax slicer did
            // not check, and a corrupt header length makes it read past the slice.
            let ext_bytes = v6.extensions().slice();
            let fragment = ipv6_fragment(h.next_header().0, ext_bytes);
            let ext_len = ext_bytes.len() as u32;
            let payload_wire_len =
                if h.payload_length() == 0 || payload.len_source == LenSource::Slice {
                    wire_payload_len(frame, payload.payload)
                } else {
                    u32::from(h.payload_length()).saturating_sub(ext_len)
                };
            Network::Ip(IpInfo {
                src: IpAddr::V6(Ipv6Addr::from(h.source())),
                dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
                proto: payload.ip_number.0,
                ttl: h.hop_limit(),
                fragment,
                payload_wire_len,
                ident: 0,
                checksum: 0,
            })
        }
        None => {
            let network = match link_ether_type(sliced) {
                Some(EtherType::ARP) => Network::Arp(
                    link_payload(sliced)
                        .and_then(|b| etherparse::ArpPacketSlice::from_slice(b).ok())
                        .and_then(|a| arp_info(&a)),
                ),
                // etherparse rejected the IPv4 header (options cut by the snap length, ...).
                Some(EtherType::IPV4) => link_payload(sliced)
                    .map(|b| raw_ipv4(frame, b))
                    .unwrap_or(Network::None),
                _ => Network::None,
            };
            return (network, Transport::None, &[], &[]);
        }
    };
    let Network::Ip(ip) = network else {
        return (network, Transport::None, &[], &[]);
    };
    if ip.fragment.is_some_and(|f| f.offset != 0) {
        return (network, Transport::Other, &[], &[]);
    }
    let ip_payload = sliced
        .net
        .as_ref()
        .and_then(|n| n.ip_payload_ref())
        .map(|p| p.payload)
        .unwrap_or(&[]);
    let mut tcp_payload: &[u8] = &[];
    let transport = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            let hdr = u32::from(t.data_offset()) * 4;
            tcp_payload = t.payload();
            let mut info = TcpInfo {
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: t.header_slice().get(13).copied().unwrap_or(0),
                window: t.window_size(),
                seg_len: ip.payload_wire_len.saturating_sub(hdr),
                header_captured: hdr.min(60) as u8,
                checksum: t.checksum(),
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
    (network, transport, tcp_payload, ip_payload)
}

/// Bytes after the last link header (Ethernet, VLAN tags).
fn link_payload<'a>(sliced: &LaxSlicedPacket<'a>) -> Option<&'a [u8]> {
    if let Some(etherparse::LaxLinkExtSlice::Vlan(v)) = sliced.link_exts.last() {
        return Some(v.payload_slice());
    }
    match &sliced.link {
        Some(LinkSlice::Ethernet2(e)) => Some(e.payload_slice()),
        Some(LinkSlice::EtherPayload(p)) => Some(p.payload),
        _ => None,
    }
}

/// An IPv4 header etherparse rejects: Wireshark still shows the addresses when the fixed
/// 20 bytes are captured and the header length is sane (options cut by the snap length), but no
/// transport layer.
fn raw_ipv4(frame: &Frame<'_>, b: &[u8]) -> Network {
    let Some(h) = b.get(..20) else {
        return Network::None;
    };
    let header_len = u32::from(h[0] & 0x0F) * 4;
    if h[0] >> 4 != 4 || header_len < 20 {
        return Network::None;
    }
    let total_len = u32::from(u16::from_be_bytes([h[2], h[3]]));
    let flags_frag = u16::from_be_bytes([h[6], h[7]]);
    let more = flags_frag & 0x2000 != 0;
    let offset = u32::from(flags_frag & 0x1FFF) * 8;
    let payload_wire_len = if total_len == 0 {
        let start = (b.as_ptr() as usize).saturating_sub(frame.data.as_ptr() as usize);
        frame
            .wire_len
            .saturating_sub(start as u32)
            .saturating_sub(header_len)
    } else {
        total_len.saturating_sub(header_len)
    };
    Network::Ip(IpInfo {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        proto: h[9],
        ttl: h[8],
        fragment: (more || offset != 0).then_some(Fragment {
            id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            offset,
            more,
        }),
        payload_wire_len,
        ident: u16::from_be_bytes([h[4], h[5]]),
        checksum: u16::from_be_bytes([h[10], h[11]]),
    })
}

/// VXLAN (RFC 7348) UDP port, as Wireshark registers it.
pub const VXLAN_PORT: u16 = 4789;
/// Teredo (RFC 4380) UDP port.
pub const TEREDO_PORT: u16 = 3544;
/// VXLAN header length before the inner Ethernet frame.
const VXLAN_HEADER_BYTES: usize = 8;

/// The layers inside a tunnel Wireshark decodes by default: VXLAN (UDP 4789, inner Ethernet),
/// Teredo (UDP 3544, inner IPv6) and IP in IP (protocols 4 and 41). One level only.
fn tunnel<'a>(
    frame: &Frame<'a>,
    ip: &IpInfo,
    transport: &Transport<'a>,
    ip_payload: &'a [u8],
) -> Option<Inner> {
    let (kind, sliced) = match transport {
        Transport::Udp(u) if u.src_port == VXLAN_PORT || u.dst_port == VXLAN_PORT => {
            let eth = u.payload.get(VXLAN_HEADER_BYTES..)?;
            (Tunnel::Vxlan, LaxSlicedPacket::from_ethernet(eth).ok()?)
        }
        Transport::Udp(u) if u.src_port == TEREDO_PORT || u.dst_port == TEREDO_PORT => {
            let v6 = teredo_payload(u.payload)?;
            if v6.first()? >> 4 != 6 {
                return None;
            }
            (Tunnel::Teredo, LaxSlicedPacket::from_ip(v6).ok()?)
        }
        Transport::Other if matches!(ip.proto, 4 | 41) && ip.fragment.is_none() => {
            (Tunnel::IpInIp, LaxSlicedPacket::from_ip(ip_payload).ok()?)
        }
        _ => return None,
    };
    let (network, transport, _, _) = layers(frame, &sliced);
    let transport = match transport {
        Transport::None => InnerTransport::None,
        Transport::Tcp(t) => InnerTransport::Tcp {
            src_port: t.src_port,
            dst_port: t.dst_port,
        },
        Transport::Udp(u) => InnerTransport::Udp {
            src_port: u.src_port,
            dst_port: u.dst_port,
        },
        Transport::Icmp(_) => InnerTransport::Icmp,
        Transport::Other => InnerTransport::Other,
    };
    Some(Inner {
        tunnel: kind,
        network,
        transport,
    })
}

/// The IPv6 packet of a Teredo datagram, after the optional authentication and origin
/// indication headers (RFC 4380 section 5.1.1).
fn teredo_payload(mut b: &[u8]) -> Option<&[u8]> {
    if b.starts_with(&[0, 1]) {
        let id_len = usize::from(*b.get(2)?);
        let au_len = usize::from(*b.get(3)?);
        // indicator, lengths, client id, authentication value, nonce (8), confirmation (1)
        b = b.get(4 + id_len + au_len + 9..)?;
    }
    if b.starts_with(&[0, 0]) {
        b = b.get(8..)?;
    }
    Some(b)
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
                header_captured: bytes.len().min(60) as u8,
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

/// The fragment header among IPv6 extension headers (RFC 8200 section 4), bounds-checked.
fn ipv6_fragment(mut next: u8, exts: &[u8]) -> Option<Fragment> {
    let mut pos = 0usize;
    // At most one of each extension type may appear; more means a corrupt or hostile chain.
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let hdr = exts.get(pos..pos + 8)?;
        match next {
            44 => {
                let off_flags = u16::from_be_bytes([hdr[2], hdr[3]]);
                return Some(Fragment {
                    id: u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                    offset: u32::from(off_flags >> 3) * 8,
                    more: off_flags & 1 != 0,
                });
            }
            // Hop-by-hop, routing, destination options: (length + 1) * 8 bytes.
            0 | 43 | 60 => pos += (usize::from(hdr[1]) + 1) * 8,
            // Authentication header (RFC 4302): (length + 2) * 4 bytes.
            51 => pos += (usize::from(hdr[1]) + 2) * 4,
            _ => return None,
        }
        next = hdr[0];
    }
    None
}

/// Extension headers followed before giving up (RFC 8200 section 4.1 lists six kinds).
const MAX_IPV6_EXTENSIONS: usize = 8;

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
            (8, 8) => {
                let tsval = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let tsecr = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                info.timestamps = Some((tsval, tsecr));
            }
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

    /// IPv4 header (no options) with the given protocol and payload length.
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        e.extend_from_slice(&ether_type.to_be_bytes());
        e.extend_from_slice(payload);
        e
    }

    fn frame(linktype: u32, data: &[u8]) -> Frame<'_> {
        Frame {
            number: 1,
            ts_ns: 0,
            ts_known: true,
            linktype,
            data,
            wire_len: data.len() as u32,
            record: (0, 0),
        }
    }

    #[test]
    fn arp_fields_and_ethernet_addresses_are_decoded() {
        let (gw, me) = ([0x00, 0x26, 0x0b, 0x31, 0x07, 0x33], [2, 0, 0, 0, 0, 0x10]);
        let mut data = Vec::new();
        data.extend_from_slice(&me);
        data.extend_from_slice(&gw);
        data.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        data.extend_from_slice(&gw);
        data.extend_from_slice(&[10, 0, 0, 1]);
        data.extend_from_slice(&me);
        data.extend_from_slice(&[10, 0, 0, 9]);
        let pkt = decode(&frame(linktype::ETHERNET, &data));
        let Network::Arp(Some(a)) = pkt.network else {
            panic!("not ARP: {:?}", pkt.network);
        };
        assert_eq!(a.op, ArpInfo::REPLY);
        assert_eq!((a.sender_mac, a.target_mac), (gw, me));
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.target_ip, Ipv4Addr::new(10, 0, 0, 9));
        assert!(!a.is_gratuitous());
        assert_eq!((pkt.eth_src, pkt.eth_dst), (gw, me));
        assert_eq!(mac_text(&gw), "00:26:0b:31:07:33");
        // Cut inside the addresses: still ARP, without fields.
        let cut = decode(&frame(linktype::ETHERNET, &data[..30]));
        assert_eq!(cut.network, Network::Arp(None));
    }

    #[test]
    fn pcap_fcs_bits_in_the_link_type_are_ignored() {
        let mut ip = ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], 8);
        ip.extend(udp(1, 2, &[]));
        let data = ethernet(0x0800, &ip);
        let pkt = decode(&frame(0x3000_0001, &data));
        assert!(pkt.ip().is_some());
        assert!(pkt.udp().is_some());
    }

    #[test]
    fn ipv4_with_options_cut_by_the_snap_length_keeps_its_addresses() {
        let mut ip = ipv4(6, [10, 0, 0, 1], [10, 0, 0, 2], 40);
        ip[0] = 0x4F; // 60-byte header, of which 20 are captured
        let data = ethernet(0x0800, &ip);
        let pkt = decode(&frame(linktype::ETHERNET, &data));
        let ip = pkt.ip().expect("IPv4 from the fixed header");
        assert_eq!(ip.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(pkt.transport, Transport::None);
        // The same on a RAW link, where etherparse gives no slice at all.
        let raw = data[14..].to_vec();
        let pkt = decode(&frame(linktype::RAW, &raw));
        assert!(pkt.ip().is_some());
        // A header length under 20 bytes shows no addresses.
        let mut bad = data.clone();
        bad[14] = 0x44;
        assert_eq!(
            decode(&frame(linktype::ETHERNET, &bad)).network,
            Network::None
        );
    }

    #[test]
    fn vxlan_exposes_the_inner_frame() {
        let mut inner_ip = ipv4(1, [192, 168, 0, 1], [192, 168, 0, 2], 8);
        inner_ip.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend(ethernet(0x0800, &inner_ip));
        let u = udp(50000, VXLAN_PORT, &vx);
        let mut ip = ipv4(17, [10, 0, 0, 1], [10, 0, 0, 2], u.len());
        ip.extend(u);
        let data = ethernet(0x0800, &ip);
        let pkt = decode(&frame(linktype::ETHERNET, &data));
        assert_eq!(
            pkt.ip().map(|i| i.src),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert!(pkt.udp().is_some());
        let inner = pkt.inner.expect("VXLAN inner layers");
        assert_eq!(inner.tunnel, Tunnel::Vxlan);
        assert_eq!(inner.transport, InnerTransport::Icmp);
        match inner.network {
            Network::Ip(i) => assert_eq!(i.dst, IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2))),
            other => panic!("inner network {other:?}"),
        }
        // A VXLAN datagram cut inside its header: no inner layers, no panic.
        let cut = &data[..data.len() - inner_ip.len() - 14 - 4];
        assert_eq!(decode(&frame(linktype::ETHERNET, cut)).inner, None);
    }

    #[test]
    fn teredo_exposes_the_inner_ipv6_after_origin_indication() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 21];
        v6.extend_from_slice(&[0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut payload = vec![0, 0, 0x0b, 0xe2, 1, 2, 3, 4];
        payload.extend(&v6);
        let u = udp(3074, TEREDO_PORT, &payload);
        let mut ip = ipv4(17, [10, 0, 0, 1], [224, 0, 0, 253], u.len());
        ip.extend(u);
        let pkt = decode(&frame(linktype::RAW, &ip));
        let inner = pkt.inner.expect("Teredo inner IPv6");
        assert_eq!(inner.tunnel, Tunnel::Teredo);
        assert!(matches!(inner.network, Network::Ip(i) if i.is_v6()));
        assert_eq!(inner.transport, InnerTransport::Other);
        // Authentication header: lengths, id, value, nonce and confirmation are skipped.
        assert_eq!(
            teredo_payload(&[0, 1, 1, 2, 9, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60]),
            Some(&[0x60][..])
        );
        assert_eq!(teredo_payload(&[0, 1, 200, 200]), None);
    }

    #[test]
    fn ipv6_in_ipv4_is_a_tunnel() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 21];
        v6.extend_from_slice(&[0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut ip = ipv4(41, [10, 0, 0, 1], [10, 0, 0, 2], v6.len());
        ip.extend(v6);
        let pkt = decode(&frame(linktype::RAW, &ip));
        assert_eq!(pkt.inner.map(|i| i.tunnel), Some(Tunnel::IpInIp));
    }

    #[test]
    fn a_detached_packet_attached_to_copies_of_its_payloads_is_the_same_packet() {
        let capture = crate::sample::sample_capture();
        let reader = crate::capture::CaptureReader::new(&capture[..]).unwrap();
        let mut with_payload = 0;
        reader
            .for_each_frame(|frame, _| {
                let pkt = decode(frame);
                let (detached, payloads) = pkt.detach();
                let (tcp, transport) = (payloads.tcp.to_vec(), payloads.transport.to_vec());
                let copies = Payloads {
                    tcp: &tcp,
                    transport: &transport,
                };
                let back = Packet::attach(&detached, copies);
                assert_eq!(format!("{back:?}"), format!("{pkt:?}"));
                if !pkt.tcp_payload.is_empty() || pkt.udp().is_some_and(|u| !u.payload.is_empty()) {
                    with_payload += 1;
                }
            })
            .unwrap();
        assert!(with_payload > 5, "the sample has payloads to move");
    }
}
