//! Builds captures in memory: the sample capture the README analyses, and packets for tests.
//!
//! [`PcapWriter`] writes a classic little-endian microsecond pcap; [`Tcp`], [`udp`], [`dns`] and
//! friends build Ethernet frames with correct checksums through `etherparse`'s `PacketBuilder`.

use std::net::IpAddr;

use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// 2024-03-01T12:00:00Z.
pub const SAMPLE_START_NS: i64 = 1_709_294_400 * 1_000_000_000;
pub const MS: i64 = 1_000_000;

/// Writes a classic pcap (magic a1b2c3d4, little-endian, microseconds, Ethernet).
#[derive(Debug, Clone)]
pub struct PcapWriter {
    pub bytes: Vec<u8>,
    pub packets: u64,
}

impl Default for PcapWriter {
    fn default() -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65_535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        PcapWriter { bytes, packets: 0 }
    }
}

impl PcapWriter {
    pub fn frame(&mut self, ts_ns: i64, frame: &[u8]) {
        let secs = ts_ns.div_euclid(1_000_000_000) as u32;
        let usecs = (ts_ns.rem_euclid(1_000_000_000) / 1000) as u32;
        self.bytes.extend_from_slice(&secs.to_le_bytes());
        self.bytes.extend_from_slice(&usecs.to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(frame);
        self.packets += 1;
    }
}

fn ip_step(src: IpAddr, dst: IpAddr) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    ip_step_numbered(src, dst, 0)
}

/// As [`ip_step`], with an IPv4 identification.
fn ip_step_numbered(
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = etherparse::Ipv4Header::new(
                0,
                64,
                etherparse::IpNumber::TCP,
                s.octets(),
                d.octets(),
            )
            .unwrap_or_default();
            h.identification = ident;
            eth.ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ip(etherparse::IpHeaders::Ipv6(
            etherparse::Ipv6Header {
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
                ..Default::default()
            },
            Default::default(),
        )),
        _ => eth.ip(etherparse::IpHeaders::Ipv4(
            Default::default(),
            Default::default(),
        )),
    }
}

/// A TCP segment to build.
#[derive(Debug, Clone)]
pub struct Tcp {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub window: u16,
    pub payload_len: usize,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub sack: Vec<(u32, u32)>,
    /// IPv4 identification (0 by default).
    pub ident: u16,
}

impl Tcp {
    pub fn new(src: &str, sport: u16, dst: &str, dport: u16) -> Self {
        Tcp {
            src: src.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            sport,
            dst: dst.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            dport,
            seq: 0,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 64_240,
            payload_len: 0,
            mss: None,
            wscale: None,
            sack_permitted: false,
            sack: Vec::new(),
            ident: 0,
        }
    }
    pub fn ident(mut self, ident: u16) -> Self {
        self.ident = ident;
        self
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = Some(ack);
        self
    }
    pub fn syn(mut self) -> Self {
        self.syn = true;
        self
    }
    pub fn fin(mut self) -> Self {
        self.fin = true;
        self
    }
    pub fn rst(mut self) -> Self {
        self.rst = true;
        self
    }
    pub fn psh(mut self) -> Self {
        self.psh = true;
        self
    }
    pub fn window(mut self, w: u16) -> Self {
        self.window = w;
        self
    }
    pub fn payload(mut self, len: usize) -> Self {
        self.payload_len = len;
        self
    }
    pub fn wscale(mut self, s: u8) -> Self {
        self.wscale = Some(s);
        self
    }
    pub fn mss(mut self, m: u16) -> Self {
        self.mss = Some(m);
        self
    }
    pub fn sack_permitted(mut self) -> Self {
        self.sack_permitted = true;
        self
    }
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        self.sack = blocks.to_vec();
        self
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut h = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        h.syn = self.syn;
        h.fin = self.fin;
        h.rst = self.rst;
        h.psh = self.psh;
        if let Some(a) = self.ack {
            h.ack = true;
            h.acknowledgment_number = a;
        }
        let mut opts = Vec::new();
        if let Some(m) = self.mss {
            opts.push(TcpOptionElement::MaximumSegmentSize(m));
        }
        if let Some(s) = self.wscale {
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::WindowScale(s));
        }
        if self.sack_permitted {
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if !self.sack.is_empty() {
            let mut blocks = [None, None, None];
            for (i, b) in self.sack.iter().skip(1).take(3).enumerate() {
                blocks[i] = Some(*b);
            }
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::Noop);
            opts.push(TcpOptionElement::SelectiveAcknowledgement(
                self.sack[0],
                blocks,
            ));
        }
        let _ = h.set_options(&opts);
        let payload = vec![0x41u8; self.payload_len];
        let mut out = Vec::new();
        let _ = ip_step_numbered(self.src, self.dst, self.ident)
            .tcp_header(h)
            .write(&mut out, &payload);
        out
    }
}

/// A UDP datagram as an Ethernet frame.
pub fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d) = (
        src.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        dst.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
    );
    let mut out = Vec::new();
    let _ = ip_step(s, d).udp(sport, dport).write(&mut out, payload);
    out
}

/// A DNS message (one question; `rcode` and one A answer for responses).
pub fn dns(id: u16, response: bool, rcode: u8, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.push(if response { 0x81 } else { 0x01 });
    m.push(if response { 0x80 | rcode } else { 0 });
    let answers: u16 = if response && rcode == 0 { 1 } else { 0 };
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&answers.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if answers == 1 {
        m.extend_from_slice(&[
            0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
    }
    m
}

/// An ICMP echo request or reply.
pub fn icmp_echo(src: &str, dst: &str, reply: bool, id: u16, seq: u16) -> Vec<u8> {
    let (s, d) = (
        src.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        dst.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
    );
    let step = ip_step(s, d);
    let step = if reply {
        step.icmpv4_echo_reply(id, seq)
    } else {
        step.icmpv4_echo_request(id, seq)
    };
    let mut out = Vec::new();
    let _ = step.write(&mut out, &[0x61; 32]);
    out
}

/// An ARP request (who-has `target`, tell `sender`).
pub fn arp_request(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// Number of frames in [`sample_capture`].
pub const SAMPLE_PACKETS: u64 = 45;

/// A small, realistic capture seen from a client: ARP, DNS (answered, NXDOMAIN, one query never
/// answered), an HTTP download with a lost segment, three duplicate ACKs and a fast
/// retransmission, a request retransmitted after 300 ms (RTO), a refused connection, a 4 s gap,
/// ICMP echo and an IPv6 handshake.
pub fn sample_capture() -> Vec<u8> {
    let mut w = PcapWriter::default();
    let t0 = SAMPLE_START_NS;
    let (c, dns_srv, web, api) = (
        "192.168.1.10",
        "192.168.1.1",
        "93.184.216.34",
        "203.0.113.7",
    );
    w.frame(t0, &arp_request([192, 168, 1, 10], [192, 168, 1, 1]));
    w.frame(
        t0 + 2 * MS,
        &udp(
            c,
            51000,
            dns_srv,
            53,
            &dns(0x1a2b, false, 0, "www.example.com", 1),
        ),
    );
    w.frame(
        t0 + 20 * MS,
        &udp(
            dns_srv,
            53,
            c,
            51000,
            &dns(0x1a2b, true, 0, "www.example.com", 1),
        ),
    );
    w.frame(
        t0 + 21 * MS,
        &udp(
            c,
            51001,
            dns_srv,
            53,
            &dns(0x1a2c, false, 0, "nonexistent.example.com", 1),
        ),
    );
    w.frame(
        t0 + 64 * MS,
        &udp(
            dns_srv,
            53,
            c,
            51001,
            &dns(0x1a2c, true, 3, "nonexistent.example.com", 1),
        ),
    );
    // HTTP download: 5 segments, the third lost before the capture point.
    let (cs, ss) = (1_000u32, 5_000_000u32);
    let t = t0 + 100 * MS;
    let cl = |x: Tcp| x;
    w.frame(
        t,
        &cl(Tcp::new(c, 50001, web, 80)
            .seq(cs)
            .syn()
            .mss(1460)
            .wscale(7)
            .sack_permitted())
        .frame(),
    );
    w.frame(
        t + 30 * MS,
        &Tcp::new(web, 80, c, 50001)
            .seq(ss)
            .ack(cs + 1)
            .syn()
            .mss(1448)
            .wscale(9)
            .sack_permitted()
            .window(65_160)
            .frame(),
    );
    w.frame(
        t + 31 * MS,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 1)
            .ack(ss + 1)
            .window(502)
            .frame(),
    );
    w.frame(
        t + 32 * MS,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 1)
            .ack(ss + 1)
            .window(502)
            .psh()
            .payload(120)
            .frame(),
    );
    let d = |i: u32| ss + 1 + i * 1448;
    w.frame(
        t + 62 * MS,
        &Tcp::new(web, 80, c, 50001)
            .seq(d(0))
            .ack(cs + 121)
            .window(128)
            .payload(1448)
            .frame(),
    );
    w.frame(
        t + 63 * MS,
        &Tcp::new(web, 80, c, 50001)
            .seq(d(1))
            .ack(cs + 121)
            .window(128)
            .payload(1448)
            .frame(),
    );
    w.frame(
        t + 63 * MS + 300_000,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 121)
            .ack(d(2))
            .window(502)
            .frame(),
    );
    for i in 3..6u32 {
        w.frame(
            t + 64 * MS + i as i64 * 200_000,
            &Tcp::new(web, 80, c, 50001)
                .seq(d(i))
                .ack(cs + 121)
                .window(128)
                .payload(1448)
                .frame(),
        );
        w.frame(
            t + 64 * MS + i as i64 * 200_000 + 50_000,
            &Tcp::new(c, 50001, web, 80)
                .seq(cs + 121)
                .ack(d(2))
                .window(502)
                .sack(&[(d(3), d(i + 1))])
                .frame(),
        );
    }
    w.frame(
        t + 66 * MS,
        &Tcp::new(web, 80, c, 50001)
            .seq(d(2))
            .ack(cs + 121)
            .window(128)
            .payload(1448)
            .frame(),
    );
    w.frame(
        t + 67 * MS,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 121)
            .ack(d(6))
            .window(502)
            .frame(),
    );
    // A second connection whose request is retransmitted after 300 ms.
    let (c2, s2) = (77_000u32, 9_000_000u32);
    let t = t0 + 400 * MS;
    w.frame(
        t,
        &Tcp::new(c, 50002, api, 443).seq(c2).syn().mss(1460).frame(),
    );
    w.frame(
        t + 45 * MS,
        &Tcp::new(api, 443, c, 50002)
            .seq(s2)
            .ack(c2 + 1)
            .syn()
            .mss(1460)
            .frame(),
    );
    w.frame(
        t + 46 * MS,
        &Tcp::new(c, 50002, api, 443).seq(c2 + 1).ack(s2 + 1).frame(),
    );
    w.frame(
        t + 47 * MS,
        &Tcp::new(c, 50002, api, 443)
            .seq(c2 + 1)
            .ack(s2 + 1)
            .psh()
            .payload(517)
            .frame(),
    );
    w.frame(
        t + 347 * MS,
        &Tcp::new(c, 50002, api, 443)
            .seq(c2 + 1)
            .ack(s2 + 1)
            .psh()
            .payload(517)
            .frame(),
    );
    w.frame(
        t + 392 * MS,
        &Tcp::new(api, 443, c, 50002)
            .seq(s2 + 1)
            .ack(c2 + 518)
            .psh()
            .payload(1200)
            .frame(),
    );
    w.frame(
        t + 393 * MS,
        &Tcp::new(c, 50002, api, 443)
            .seq(c2 + 518)
            .ack(s2 + 1201)
            .frame(),
    );
    // A refused connection.
    let t = t0 + 900 * MS;
    w.frame(t, &Tcp::new(c, 50003, api, 8443).seq(424_242).syn().frame());
    w.frame(
        t + 44 * MS,
        &Tcp::new(api, 8443, c, 50003)
            .seq(0)
            .ack(424_243)
            .rst()
            .frame(),
    );
    // A DNS query that is never answered, and ICMP echo.
    let t = t0 + 1_000 * MS;
    w.frame(
        t,
        &udp(
            c,
            51002,
            dns_srv,
            53,
            &dns(0x1a2d, false, 0, "slow.example.net", 28),
        ),
    );
    w.frame(t + 100 * MS, &icmp_echo(c, web, false, 7, 1));
    w.frame(t + 128 * MS, &icmp_echo(web, c, true, 7, 1));
    // The download connection sits idle for 4 s, then closes.
    let t = t0 + 4_200 * MS;
    w.frame(
        t,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 121)
            .ack(d(6))
            .window(502)
            .fin()
            .frame(),
    );
    w.frame(
        t + 30 * MS,
        &Tcp::new(web, 80, c, 50001)
            .seq(d(6))
            .ack(cs + 122)
            .window(128)
            .fin()
            .frame(),
    );
    w.frame(
        t + 31 * MS,
        &Tcp::new(c, 50001, web, 80)
            .seq(cs + 122)
            .ack(d(6) + 1)
            .window(502)
            .frame(),
    );
    w.frame(
        t + 40 * MS,
        &udp(
            c,
            51003,
            dns_srv,
            53,
            &dns(0x1a2e, false, 0, "api.example.org", 1),
        ),
    );
    w.frame(
        t + 52 * MS,
        &udp(
            dns_srv,
            53,
            c,
            51003,
            &dns(0x1a2e, true, 0, "api.example.org", 1),
        ),
    );
    // IPv6: a handshake and a short exchange.
    let (v6c, v6s) = ("2001:db8::10", "2001:db8:1::80");
    let t = t0 + 6_000 * MS;
    w.frame(
        t,
        &Tcp::new(v6c, 50010, v6s, 443)
            .seq(1)
            .syn()
            .mss(1440)
            .frame(),
    );
    w.frame(
        t + 20 * MS,
        &Tcp::new(v6s, 443, v6c, 50010)
            .seq(100)
            .ack(2)
            .syn()
            .mss(1440)
            .frame(),
    );
    w.frame(
        t + 21 * MS,
        &Tcp::new(v6c, 50010, v6s, 443).seq(2).ack(101).frame(),
    );
    w.frame(
        t + 22 * MS,
        &Tcp::new(v6c, 50010, v6s, 443)
            .seq(2)
            .ack(101)
            .psh()
            .payload(300)
            .frame(),
    );
    w.frame(
        t + 43 * MS,
        &Tcp::new(v6s, 443, v6c, 50010)
            .seq(101)
            .ack(302)
            .psh()
            .payload(900)
            .frame(),
    );
    w.frame(
        t + 44 * MS,
        &Tcp::new(v6c, 50010, v6s, 443)
            .seq(302)
            .ack(1001)
            .rst()
            .frame(),
    );
    w.frame(
        t + 500 * MS,
        &udp(
            c,
            51004,
            dns_srv,
            53,
            &dns(0x1a2f, false, 0, "www.example.com", 1),
        ),
    );
    w.frame(
        t + 515 * MS,
        &udp(
            dns_srv,
            53,
            c,
            51004,
            &dns(0x1a2f, true, 0, "www.example.com", 1),
        ),
    );
    debug_assert_eq!(w.packets, SAMPLE_PACKETS);
    w.bytes
}
