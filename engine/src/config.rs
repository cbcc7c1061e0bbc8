//! Thresholds, read from a v5 `config.yaml` (`thresholds:` section, same keys and defaults as
//! v5's `src/analyzer_factory.py`). Unknown keys are ignored so a v5 file loads unchanged.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Every threshold the analyses read. Times are in seconds unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    pub packet_gap: f64,
    pub syn_synack_delay: f64,
    pub handshake_total: f64,
    pub syn_retrans_threshold: f64,
    pub rtt_warning: f64,
    pub rtt_critical: f64,
    pub retransmission_low: u64,
    pub retransmission_medium: u64,
    pub retransmission_critical: u64,
    /// Percent.
    pub retransmission_rate_low: f64,
    pub retransmission_rate_medium: f64,
    pub retransmission_rate_critical: f64,
    pub rto_threshold_ms: f64,
    pub fast_retrans_delay_max_ms: f64,
    pub low_window_threshold: u64,
    pub zero_window_duration: f64,
    pub dns_response_warning: f64,
    pub dns_response_critical: f64,
    pub dns_timeout: f64,
    pub tcp_idle_threshold: f64,
    pub tcp_zombie_threshold: f64,
    pub asymmetry_threshold: f64,
    pub asymmetry_min_bytes: u64,
    pub burst_interval_ms: f64,
    pub burst_threshold_multiplier: f64,
    pub burst_min_packets: u64,
    pub temporal_slot_duration: f64,
    pub jitter_warning: f64,
    pub jitter_critical: f64,
    // Security detectors. v5 hard-codes these in its detector constructors; same defaults here.
    /// Distinct targets on at most 3 ports that make a horizontal scan (one port, many hosts).
    pub port_scan_horizontal_threshold: u64,
    /// Distinct ports of at most 3 targets that make a vertical scan (one host, many ports).
    pub port_scan_vertical_threshold: u64,
    /// Seconds; scan attempts are counted per source within windows of this length.
    pub port_scan_time_window: f64,
    /// Share of SYNs without SYN/ACK above which a scan's severity is raised.
    pub port_scan_failure_rate: f64,
    /// Attempts per second above which a scan's severity is raised.
    pub port_scan_rate: f64,
    pub brute_force_min_attempts: u64,
    pub brute_force_failure_rate: f64,
    /// Attempts per second below which repeated failures are not called brute force.
    pub brute_force_min_rate: f64,
    /// Per second, per destination, within a 10 s slot.
    pub ddos_syn_rate: f64,
    pub ddos_udp_rate: f64,
    pub ddos_icmp_rate: f64,
    /// Average query name length, in characters.
    pub dns_tunnel_avg_length: f64,
    /// Shannon entropy of the subdomain part, in bits per character.
    pub dns_tunnel_entropy: f64,
    pub dns_tunnel_queries_per_minute: f64,
    pub exfil_large_upload_mb: f64,
    /// Seconds; sliding window for `exfil_large_upload_mb`.
    pub exfil_window: f64,
    /// Upload/download ratio for `suspicious_ratio`.
    pub exfil_ratio: f64,
    pub c2_min_beacons: u64,
    pub lateral_min_targets: u64,
    /// Seconds; window for rapid lateral movement.
    pub lateral_window: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            packet_gap: 1.0,
            syn_synack_delay: 0.1,
            handshake_total: 0.3,
            syn_retrans_threshold: 2.0,
            rtt_warning: 0.1,
            rtt_critical: 0.5,
            retransmission_low: 10,
            retransmission_medium: 50,
            retransmission_critical: 100,
            retransmission_rate_low: 1.0,
            retransmission_rate_medium: 3.0,
            retransmission_rate_critical: 5.0,
            rto_threshold_ms: 200.0,
            fast_retrans_delay_max_ms: 50.0,
            low_window_threshold: 8192,
            zero_window_duration: 0.1,
            dns_response_warning: 0.1,
            dns_response_critical: 1.0,
            dns_timeout: 5.0,
            tcp_idle_threshold: 30.0,
            tcp_zombie_threshold: 60.0,
            asymmetry_threshold: 0.3,
            asymmetry_min_bytes: 10_000,
            burst_interval_ms: 100.0,
            burst_threshold_multiplier: 3.0,
            burst_min_packets: 50,
            temporal_slot_duration: 60.0,
            jitter_warning: 0.03,
            jitter_critical: 0.05,
            port_scan_horizontal_threshold: 10,
            port_scan_vertical_threshold: 10,
            port_scan_time_window: 60.0,
            port_scan_failure_rate: 0.7,
            port_scan_rate: 5.0,
            brute_force_min_attempts: 10,
            brute_force_failure_rate: 0.7,
            brute_force_min_rate: 0.5,
            ddos_syn_rate: 100.0,
            ddos_udp_rate: 500.0,
            ddos_icmp_rate: 100.0,
            dns_tunnel_avg_length: 50.0,
            dns_tunnel_entropy: 4.2,
            dns_tunnel_queries_per_minute: 10.0,
            exfil_large_upload_mb: 50.0,
            exfil_window: 300.0,
            exfil_ratio: 5.0,
            c2_min_beacons: 10,
            lateral_min_targets: 3,
            lateral_window: 300.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportsConfig {
    pub output_dir: String,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            output_dir: "reports".into(),
        }
    }
}

/// A v5 `config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub thresholds: Thresholds,
    pub reports: ReportsConfig,
}

impl Config {
    /// Parses a v5 `config.yaml`; every threshold must be a number ≥ 0 (as v5 checks).
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let config: Config =
            serde_yaml_ng::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        let t =
            serde_json::to_value(&config.thresholds).map_err(|e| Error::Config(e.to_string()))?;
        if let Some(map) = t.as_object() {
            for (key, value) in map {
                if value.as_f64().is_none_or(|v| !v.is_finite() || v < 0.0) {
                    return Err(Error::Config(format!(
                        "thresholds.{key} must be a number >= 0"
                    )));
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v5_config_overrides_only_the_keys_it_names() {
        let c = Config::from_yaml(
            "thresholds:\n  rtt_warning: 0.2\n  ssh_unknown: 1\nreports:\n  output_dir: out\n",
        )
        .unwrap();
        assert_eq!(c.thresholds.rtt_warning, 0.2);
        assert_eq!(c.thresholds.rtt_critical, 0.5);
        assert_eq!(c.reports.output_dir, "out");
    }

    #[test]
    fn a_negative_threshold_is_refused_with_its_name() {
        let err = Config::from_yaml("thresholds:\n  dns_timeout: -1\n").unwrap_err();
        assert!(err.to_string().contains("dns_timeout"), "{err}");
    }
}
