//! The analyses. Each one lives in its own file, implements [`Analyzer`], and is listed once in
//! [`registry`]; it fills its own typed section of the [`Report`](crate::report::Report).

pub use crate::analysis::{Analyzer, Finish, Kinds, Layer4, PacketMeta, Prefetch, Walk};
use crate::config::Config;
use crate::Options;

pub mod arp_spoofing_detection;
pub mod asymmetric_traffic;
pub mod brute_force_detection;
pub mod burst;
pub mod c2_beaconing_detection;
pub mod conversations;
pub mod data_exfiltration_detection;
pub mod ddos_detection;
pub mod dns;
pub mod dns_tunneling_detection;
pub mod evict;
pub mod health_score;
pub mod icmp;
pub mod ip_fragmentation;
pub mod jitter;
pub mod lateral_movement_detection;
pub mod port_scan_detection;
pub mod protocol_distribution;
pub mod retransmission;
pub mod rtt;
pub mod sack;
pub mod security;
pub mod service_classification;
pub mod syn_retransmissions;
pub mod tcp_handshake;
pub mod tcp_reset;
pub mod tcp_timeout;
pub mod tcp_window;
pub mod temporal;
pub mod throughput;
pub mod timestamps;
pub mod top_talkers;
pub mod transfers;

/// One analysis: its report key (the key of its section), its title, whether it is in the
/// engine's first-look set (`--analyses core`, the set the tshark oracle covers), and how to
/// make it. [`TABLE`] lists each analysis once; [`ALL`], [`CORE`], [`registry`] and the
/// renderers' titles come from it.
pub struct Entry {
    pub key: &'static str,
    pub title: &'static str,
    pub core: bool,
    make: fn(&Config, &Options) -> Box<dyn Analyzer>,
}

macro_rules! analysis {
    ($key:literal, $title:literal, $core:literal, |$config:ident, $options:ident| $make:expr) => {
        Entry {
            key: $key,
            title: $title,
            core: $core,
            make: |$config, $options| {
                let _ = (&$config, &$options);
                Box::new($make)
            },
        }
    };
}

/// Every analysis, in report order. `health_score` reads the other sections, so it stays last.
pub const TABLE: &[Entry] = &[
    analysis!("timestamps", "Timing and gaps", true, |config, options| {
        timestamps::Timestamps::new(config, options)
    }),
    analysis!(
        "tcp_handshake",
        "TCP handshakes",
        true,
        |config, options| tcp_handshake::TcpHandshake::new(config, options)
    ),
    analysis!(
        "retransmission",
        "TCP retransmissions and anomalies",
        true,
        |config, options| retransmission::Retransmission::new(config, options)
    ),
    analysis!("rtt", "Round-trip time", false, |config, options| {
        rtt::Rtt::new(config, options)
    }),
    analysis!("tcp_window", "TCP window", false, |config, options| {
        tcp_window::TcpWindow::new(config, options)
    }),
    analysis!("tcp_reset", "TCP resets", false, |config, options| {
        tcp_reset::TcpReset::new(config, options)
    }),
    analysis!("top_talkers", "Top talkers", true, |config, options| {
        top_talkers::TopTalkers::new(options)
    }),
    analysis!("throughput", "Throughput", false, |config, options| {
        throughput::Throughput::new(config, options)
    }),
    analysis!(
        "syn_retransmissions",
        "SYN retransmissions",
        false,
        |config, options| syn_retransmissions::SynRetransmissions::new(config, options)
    ),
    analysis!(
        "tcp_timeout",
        "TCP connection states and timeouts",
        false,
        |config, options| tcp_timeout::TcpTimeout::new(config, options)
    ),
    analysis!("burst", "Traffic bursts", false, |config, options| {
        burst::BurstAnalyzer::new(config, options)
    }),
    analysis!(
        "temporal",
        "Temporal patterns (UTC)",
        false,
        |config, options| temporal::Temporal::new(config, options)
    ),
    analysis!("dns", "DNS", true, |config, options| dns::Dns::new(
        config, options
    )),
    analysis!("icmp", "ICMP and ICMPv6", false, |config, options| {
        icmp::Icmp::new(options)
    }),
    analysis!(
        "protocol_distribution",
        "Protocol distribution",
        true,
        |config, options| protocol_distribution::ProtocolDistribution::default()
    ),
    analysis!(
        "asymmetric_traffic",
        "Asymmetric traffic",
        false,
        |config, options| asymmetric_traffic::AsymmetricTraffic::new(config, options)
    ),
    analysis!("sack", "SACK and D-SACK", false, |config, options| {
        sack::Sack::new(config, options)
    }),
    analysis!("jitter", "Jitter (RFC 3393)", false, |config, options| {
        jitter::Jitter::new(config, options)
    }),
    analysis!(
        "service_classification",
        "Service classification",
        false,
        |config, options| service_classification::ServiceClassification::new(options)
    ),
    analysis!(
        "ip_fragmentation",
        "IP fragmentation",
        false,
        |config, options| ip_fragmentation::IpFragmentation::new(options)
    ),
    analysis!(
        "port_scan_detection",
        "Port scans",
        false,
        |config, options| port_scan_detection::PortScanDetection::new(config, options)
    ),
    analysis!(
        "brute_force_detection",
        "Brute force",
        false,
        |config, options| brute_force_detection::BruteForceDetection::new(config, options)
    ),
    analysis!("ddos_detection", "DDoS", false, |config, options| {
        ddos_detection::DdosDetection::new(config, options)
    }),
    analysis!(
        "dns_tunneling_detection",
        "DNS tunneling",
        false,
        |config, options| dns_tunneling_detection::DnsTunnelingDetection::new(config, options)
    ),
    analysis!(
        "data_exfiltration_detection",
        "Data exfiltration",
        false,
        |config, options| data_exfiltration_detection::DataExfiltrationDetection::new(
            config, options
        )
    ),
    analysis!(
        "c2_beaconing_detection",
        "C2 beaconing",
        false,
        |config, options| c2_beaconing_detection::C2BeaconingDetection::new(config, options)
    ),
    analysis!(
        "lateral_movement_detection",
        "Lateral movement",
        false,
        |config, options| lateral_movement_detection::LateralMovementDetection::new(
            config, options
        )
    ),
    analysis!(
        "arp_spoofing_detection",
        "ARP spoofing",
        false,
        |config, options| arp_spoofing_detection::ArpSpoofingDetection::new(options)
    ),
    analysis!("conversations", "Conversations", true, |config, options| {
        conversations::Conversations::new(options)
    }),
    analysis!(
        "transfers",
        "Transfers: what went wrong and what limited them",
        false,
        |config, options| transfers::Transfers::new(options)
    ),
    analysis!("health_score", "Health score", false, |config, options| {
        health_score::HealthScore
    }),
];

/// Report keys of every analysis, in report order.
pub const ALL: [&str; TABLE.len()] = {
    let mut keys = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        keys[i] = TABLE[i].key;
        i += 1;
    }
    keys
};

const CORE_COUNT: usize = {
    let (mut n, mut i) = (0, 0);
    while i < TABLE.len() {
        n += TABLE[i].core as usize;
        i += 1;
    }
    n
};

/// The analyses of the engine's first look at a capture, and the set the tshark oracle covers
/// (`--analyses core`), in report order.
pub const CORE: [&str; CORE_COUNT] = {
    let mut keys = [""; CORE_COUNT];
    let (mut n, mut i) = (0, 0);
    while i < TABLE.len() {
        if TABLE[i].core {
            keys[n] = TABLE[i].key;
            n += 1;
        }
        i += 1;
    }
    keys
};

/// The entry of an analysis, by report key.
pub fn entry(key: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.key == key)
}

/// The analyses `options.analyses` selects (all when empty), made, with their report keys.
pub fn registry(config: &Config, options: &Options) -> Vec<(&'static str, Box<dyn Analyzer>)> {
    TABLE
        .iter()
        .filter(|e| options.analyses.is_empty() || options.analyses.iter().any(|k| k == e.key))
        .map(|e| (e.key, (e.make)(config, options)))
        .collect()
}
