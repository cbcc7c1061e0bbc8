//! `protocol_distribution`: frames per layer-3 and layer-4 protocol, destination ports and the
//! well-known services they map to, bytes per protocol.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Analyzer, Finish, Layer4, PacketMeta};
use crate::decode::{InnerTransport, Network, Packet};
use crate::report::{Report, MAX_RANKED};

/// Well-known ports and their services (v5's map, extended with a few common ones).
pub fn service_name(port: u16) -> Option<&'static str> {
    Some(match port {
        20 | 21 => "FTP",
        22 => "SSH",
        23 => "Telnet",
        25 | 465 | 587 => "SMTP",
        53 => "DNS",
        67 | 68 => "DHCP",
        80 | 8080 => "HTTP",
        110 | 995 => "POP3",
        123 => "NTP",
        137..=139 => "NetBIOS",
        143 | 993 => "IMAP",
        161 | 162 => "SNMP",
        179 => "BGP",
        389 | 636 => "LDAP",
        443 | 8443 => "HTTPS",
        445 => "SMB",
        514 => "Syslog",
        1433 => "MSSQL",
        1883 => "MQTT",
        3306 => "MySQL",
        3389 => "RDP",
        4789 => "VXLAN",
        5353 => "mDNS",
        5355 => "LLMNR",
        5432 => "PostgreSQL",
        5672 => "RabbitMQ",
        5900 => "VNC",
        6379 => "Redis",
        9092 => "Kafka",
        9200 => "Elasticsearch",
        27017 => "MongoDB",
        _ => return None,
    })
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortCount {
    pub port: u16,
    pub packets: u64,
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProtocolDistributionReport {
    pub total_packets: u64,
    /// Frames with an IPv4 / IPv6 header, ARP frames, and the rest. A tunnelled frame also
    /// counts for its inner layers (IPv6 in Teredo, ARP in VXLAN...).
    pub layer3_distribution: BTreeMap<String, u64>,
    pub layer3_percentages: BTreeMap<String, f64>,
    /// Frames per transport protocol: TCP, UDP, ICMP (ICMP and ICMPv6), Other (other IP
    /// protocols). A fragmented datagram counts once, on the frame that completes it. A tunnelled
    /// frame also counts for its inner TCP, UDP or ICMP.
    pub layer4_distribution: BTreeMap<String, u64>,
    pub layer4_percentages: BTreeMap<String, f64>,
    pub vlan_packets: u64,
    pub top_tcp_ports: Vec<PortCount>,
    pub top_udp_ports: Vec<PortCount>,
    pub service_distribution: BTreeMap<String, u64>,
    /// Bytes on the wire (frame length) per transport protocol.
    pub protocol_bytes: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct ProtocolDistribution {
    total: u64,
    ipv4: u64,
    ipv6: u64,
    arp: u64,
    l3_other: u64,
    l4: [u64; 4],
    l4_bytes: [u64; 4],
    vlan: u64,
    tcp_ports: Vec<u64>,
    udp_ports: Vec<u64>,
}

fn l4_index(l: Layer4) -> usize {
    match l {
        Layer4::Tcp => 0,
        Layer4::Udp => 1,
        Layer4::Icmp => 2,
        Layer4::Other => 3,
    }
}
const L4_NAMES: [&str; 4] = ["TCP", "UDP", "ICMP", "Other"];

impl Analyzer for ProtocolDistribution {
    fn on_packet(&mut self, pkt: &Packet<'_>, meta: &PacketMeta) {
        self.total += 1;
        if pkt.vlan {
            self.vlan += 1;
        }
        match pkt.network {
            Network::Ip(ip) if ip.is_v6() => self.ipv6 += 1,
            Network::Ip(_) => self.ipv4 += 1,
            Network::Arp(_) => self.arp += 1,
            Network::None => self.l3_other += 1,
        }
        if let Some(l4) = meta.layer4 {
            let i = l4_index(l4);
            self.l4[i] += 1;
            self.l4_bytes[i] += u64::from(pkt.wire_len);
        }
        // A tunnelled frame (VXLAN, Teredo, IP in IP) also counts for the inner layers it shows,
        // as tshark counts a frame for every protocol in `frame.protocols`.
        if let (Some(inner), Network::Ip(outer)) = (&pkt.inner, &pkt.network) {
            match inner.network {
                Network::Ip(ip) if ip.is_v6() != outer.is_v6() => {
                    if ip.is_v6() {
                        self.ipv6 += 1;
                    } else {
                        self.ipv4 += 1;
                    }
                }
                Network::Arp(_) => self.arp += 1,
                _ => {}
            }
            let inner_l4 = match inner.transport {
                InnerTransport::Tcp { .. } => Some(Layer4::Tcp),
                InnerTransport::Udp { .. } => Some(Layer4::Udp),
                InnerTransport::Icmp => Some(Layer4::Icmp),
                InnerTransport::Other | InnerTransport::None => None,
            };
            if let Some(l4) = inner_l4.filter(|&l| Some(l) != meta.layer4) {
                let i = l4_index(l4);
                self.l4[i] += 1;
                self.l4_bytes[i] += u64::from(pkt.wire_len);
            }
        }
        // Port counts are dense arrays: two 512 KiB tables beat a hash map per packet.
        let (ports, port) = match (pkt.tcp(), pkt.udp()) {
            (Some(t), _) => (&mut self.tcp_ports, service_port(t.src_port, t.dst_port)),
            (_, Some(u)) => (&mut self.udp_ports, service_port(u.src_port, u.dst_port)),
            _ => return,
        };
        if ports.is_empty() {
            ports.resize(65_536, 0);
        }
        ports[usize::from(port)] += 1;
    }

    fn finish(self: Box<Self>, _end: &Finish<'_>, report: &mut Report) {
        let total = self.total;
        let pct = |n: u64| {
            if total == 0 {
                0.0
            } else {
                (n as f64 * 10_000.0 / total as f64).round() / 100.0
            }
        };
        let mut l3 = BTreeMap::new();
        l3.insert("IPv4".to_string(), self.ipv4);
        l3.insert("IPv6".to_string(), self.ipv6);
        l3.insert("ARP".to_string(), self.arp);
        l3.insert("Other".to_string(), self.l3_other);
        let mut l4 = BTreeMap::new();
        let mut bytes = BTreeMap::new();
        for (i, name) in L4_NAMES.iter().enumerate() {
            l4.insert(name.to_string(), self.l4[i]);
            bytes.insert(name.to_string(), self.l4_bytes[i]);
        }
        let mut services = BTreeMap::new();
        let top = |ports: &[u64], services: &mut BTreeMap<String, u64>| {
            let mut v: Vec<PortCount> = ports
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(p, &n)| {
                    let service = service_name(p as u16).map(str::to_string);
                    if let Some(s) = &service {
                        *services.entry(s.clone()).or_insert(0) += n;
                    }
                    PortCount {
                        port: p as u16,
                        packets: n,
                        service,
                    }
                })
                .collect();
            v.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.port.cmp(&b.port)));
            v.truncate(MAX_RANKED);
            v
        };
        let top_tcp_ports = top(&self.tcp_ports, &mut services);
        let top_udp_ports = top(&self.udp_ports, &mut services);
        report.protocol_distribution = Some(ProtocolDistributionReport {
            total_packets: total,
            layer3_percentages: l3.iter().map(|(k, &v)| (k.clone(), pct(v))).collect(),
            layer3_distribution: l3,
            layer4_percentages: l4.iter().map(|(k, &v)| (k.clone(), pct(v))).collect(),
            layer4_distribution: l4,
            vlan_packets: self.vlan,
            top_tcp_ports,
            top_udp_ports,
            service_distribution: services,
            protocol_bytes: bytes,
        });
    }
}

/// The port that names the service: the well-known one if either is, else the lower one
/// (servers usually listen on the lower port; ephemeral ports are high).
pub fn service_port(src: u16, dst: u16) -> u16 {
    match (service_name(src).is_some(), service_name(dst).is_some()) {
        (false, true) => dst,
        (true, false) => src,
        _ => src.min(dst),
    }
}
