//! The HTML report: one self-contained page (CSS and SVG charts inline, no script, no font,
//! no remote reference), rendered with minijinja from the report's JSON form so that every
//! analysis present is shown. Autoescape is on: capture-derived text (DNS names, flow names)
//! is hostile input and only ever reaches the page escaped.
//!
//! The page declares its own Content-Security-Policy: nothing may load or run (`default-src
//! 'none'`), and the only style allowed is the embedded stylesheet, named by its SHA-256 hash,
//! so the page also works when served under a strict policy.

use std::collections::BTreeMap;

use minijinja::{context, Environment, UndefinedBehavior, Value as Jinja};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::charts::{self, Series};
use super::view::{self, Fact, Finding, Section};
use crate::analyzers::{
    dns::DnsReport, protocol_distribution::ProtocolDistributionReport,
    top_talkers::TopTalkersReport,
};
use crate::report::{Metadata, Report};

const TEMPLATE: &str = include_str!("../../templates/report.html");
const CSS: &str = include_str!("../../templates/report.css");
/// Rows of the talkers chart; the table below it lists all of them.
const TALKER_BARS: usize = 10;

/// `throughput.timeline`: packets and bytes per bucket.
#[derive(Debug, Deserialize)]
struct Timeline {
    bucket_seconds: f64,
    points: Vec<TimelinePoint>,
}

#[derive(Debug, Deserialize)]
struct TimelinePoint {
    t: f64,
    packets: f64,
    bytes: f64,
}

/// `rtt.rtt_over_time`: RTT samples of the worst flows.
#[derive(Debug, Deserialize)]
struct RttFlow {
    flow: String,
    #[serde(default)]
    stream: Option<u64>,
    points: Vec<(f64, f64)>,
}

#[derive(Debug, Serialize)]
struct HealthView {
    score: String,
    qos: String,
    severity: String,
    /// CSS class from the severity.
    sev: &'static str,
    recommendations: Vec<String>,
}

/// The diagnosis as the page leads with it.
#[derive(Serialize)]
struct DiagnosisView {
    verdict: String,
    causes: Vec<CauseView>,
}

#[derive(Serialize)]
struct CauseView {
    cause: String,
    severity: &'static str,
    summary: String,
    evidence: String,
    scope: String,
    frames: String,
    display_filter: String,
    recommendation: String,
}

/// Renders the report as one HTML page.
pub fn html(report: &Report) -> String {
    html_of_tree(&view::tree(report))
}

/// Renders a report given as JSON (e.g. a saved `.json` report) as one HTML page.
pub fn html_of_json(json: &str) -> Result<String, serde_json::Error> {
    let tree: Map<String, Value> = serde_json::from_str(json)?;
    Ok(html_of_tree(&tree))
}

fn html_of_tree(tree: &Map<String, Value>) -> String {
    let metadata: Metadata = tree
        .get("metadata")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let sections = view::sections(tree);
    let all = view::findings(tree);
    let mut counts: BTreeMap<usize, (&'static str, usize)> = BTreeMap::new();
    for f in &all {
        counts
            .entry(view::severity_rank(f.severity))
            .or_insert((f.severity, 0))
            .1 += 1;
    }
    let counts: Vec<(&str, usize)> = counts.into_values().collect();
    let findings_total = all.len();
    let top: Vec<Finding> = view::top_findings(all, view::TOP_FINDINGS);
    let charts = charts_of(tree);
    let diagnosis = view::diagnosis(tree).map(|d| DiagnosisView {
        verdict: format!("{:?}", d.verdict).to_lowercase(),
        causes: d
            .causes
            .iter()
            .map(|c| CauseView {
                cause: c.cause.map(|c| c.as_str()).unwrap_or("other").to_string(),
                severity: c.severity.as_str(),
                summary: c.summary.clone(),
                evidence: c.evidence.text(),
                scope: c.hosts.join(", "),
                frames: c
                    .frames
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                display_filter: c.display_filter.clone(),
                recommendation: c.recommendation.clone(),
            })
            .collect(),
    });
    let health = view::health(tree).map(|h| HealthView {
        score: view::number(h.overall_score),
        qos: view::qos_text(&h),
        sev: view::severity_word(&h.severity).unwrap_or("ok"),
        severity: h.severity.clone(),
        recommendations: h.recommendations.iter().map(|r| r.text()).collect(),
    });
    let ctx = context! {
        title => format!("PCAP Analyzer report – {}", metadata.pcap_file),
        file => metadata.pcap_file,
        overview => overview(&metadata),
        warnings => metadata.warnings,
        health => health,
        diagnosis => diagnosis,
        counts => counts,
        findings_total => findings_total,
        top_findings => top,
        sections => sections,
        charts => charts,
        visible_rows => view::VISIBLE_TABLE_ROWS,
        css => Jinja::from_safe_string(CSS.to_string()),
        // Our own text (base64 and quotes, no `"`): kept literal so the policy reads as written.
        csp => Jinja::from_safe_string(csp()),
        version => env!("CARGO_PKG_VERSION"),
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let rendered = env
        .add_template("report.html", TEMPLATE)
        .and_then(|()| env.get_template("report.html"))
        .and_then(|t| t.render(ctx));
    match rendered {
        Ok(page) => page,
        // The template is part of the binary and tested; should it still fail, the user gets
        // a page that says so rather than nothing.
        Err(e) => format!(
            "<!doctype html><meta charset=\"utf-8\"><title>report error</title><p>The HTML report could not be rendered: {}</p>",
            charts::esc(&e.to_string())
        ),
    }
}

/// The page's own policy: nothing loads or runs; only the embedded stylesheet applies.
pub fn csp() -> String {
    let digest = Sha256::digest(CSS.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src data:; base-uri 'none'; form-action 'none'",
        base64(&digest)
    )
}

/// Standard base64 (RFC 4648 §4) with padding, for the CSP hash.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn fact(label: &str, value: impl Into<String>) -> Fact {
    Fact {
        label: label.to_string(),
        value: value.into(),
    }
}

fn overview(m: &Metadata) -> Vec<Fact> {
    let mut facts = vec![
        fact("File", m.pcap_file.clone()),
        fact("Packets", m.total_packets.to_string()),
        fact(
            "Duration",
            format!("{} s", view::number(m.capture_duration)),
        ),
        fact("Format", m.format.clone()),
    ];
    if m.capture_duration > 0.0 {
        facts.push(fact(
            "Packet rate",
            format!(
                "{} packets/s",
                view::number(m.total_packets as f64 / m.capture_duration)
            ),
        ));
    }
    let time = |t: &Option<String>| {
        t.as_deref()
            .map(|t| view::readable_time(t).unwrap_or_else(|| t.to_string()))
            .unwrap_or_default()
    };
    facts.push(fact("First packet", time(&m.first_timestamp)));
    facts.push(fact("Last packet", time(&m.last_timestamp)));
    facts.push(fact("Bytes read", m.bytes_read.to_string()));
    facts.push(fact("Link types", m.link_types.join(", ")));
    if m.undecoded_packets > 0 {
        facts.push(fact("Undecoded packets", m.undecoded_packets.to_string()));
    }
    facts.push(fact(
        "Analysed in",
        format!("{} s", view::number(m.analysis_seconds)),
    ));
    facts
}

/// Time from the first point, so that buckets in epoch seconds and in seconds from the start
/// read the same.
fn rebase(points: &mut [(f64, f64)], origin: f64) {
    for p in points {
        p.0 -= origin;
    }
}

/// One section read back into its report type; `None` when absent or of another shape.
fn section<T: serde::de::DeserializeOwned>(tree: &Map<String, Value>, key: &str) -> Option<T> {
    tree.get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn get<'a>(tree: &'a Map<String, Value>, section: &str, key: &str) -> Option<&'a Value> {
    tree.get(section).and_then(|s| s.get(key))
}

/// The charts of each section, keyed by the section's report key.
fn charts_of(tree: &Map<String, Value>) -> BTreeMap<String, Vec<Jinja>> {
    let mut charts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |key: &str, svg: String| {
        if !svg.is_empty() {
            charts.entry(key.to_string()).or_default().push(svg);
        }
    };
    if let Some(v) = get(tree, "throughput", "timeline") {
        add("throughput", traffic_chart(v));
    }
    if let Some(v) = get(tree, "rtt", "rtt_over_time") {
        add("rtt", rtt_chart(v));
    }
    if let Some(d) = section::<DnsReport>(tree, "dns") {
        let mut lower = 0.0;
        let bins: Vec<(String, f64)> = d
            .response_time_histogram
            .iter()
            .map(|(edge, n)| {
                let name = if edge.is_finite() {
                    format!("{}–{}", charts::short(lower), charts::short(*edge))
                } else {
                    format!("> {}", charts::short(lower))
                };
                lower = *edge;
                (name, *n as f64)
            })
            .collect();
        if bins.iter().any(|b| b.1 > 0.0) {
            add(
                "dns",
                charts::bar_chart(
                    "DNS response time distribution",
                    "response time (ms)",
                    "responses",
                    &bins,
                    true,
                    "",
                ),
            );
        }
    }
    if let Some(p) = section::<ProtocolDistributionReport>(tree, "protocol_distribution") {
        let bars: Vec<(String, f64)> = p
            .layer4_distribution
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n as f64))
            .collect();
        add(
            "protocol_distribution",
            charts::bar_chart(
                "Protocol mix (layer 4)",
                "protocol",
                "packets",
                &bars,
                false,
                "",
            ),
        );
    }
    if let Some(t) = section::<TopTalkersReport>(tree, "top_talkers") {
        let bars: Vec<(String, f64)> = t
            .top_ips
            .iter()
            .take(TALKER_BARS)
            .map(|x| (x.ip.clone(), x.bytes as f64))
            .collect();
        add(
            "top_talkers",
            charts::hbar_chart("Top talkers by bytes (sent + received)", "bytes", &bars, ""),
        );
    }
    charts
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(Jinja::from_safe_string).collect()))
        .collect()
}

/// Packets/s and bytes/s over time from `throughput.timeline`
/// (`{bucket_seconds, points:[{t, packets, bytes}]}`); empty when absent or of another shape.
pub fn traffic_chart(timeline: &Value) -> String {
    let Some(t) = serde_json::from_value::<Timeline>(timeline.clone())
        .ok()
        .filter(|t| t.bucket_seconds > 0.0 && !t.points.is_empty())
    else {
        return String::new();
    };
    let origin = t.points.iter().map(|p| p.t).fold(f64::INFINITY, f64::min);
    let per_s = |f: fn(&TimelinePoint) -> f64| {
        let mut pts: Vec<(f64, f64)> = t
            .points
            .iter()
            .map(|p| (p.t, f(p) / t.bucket_seconds))
            .collect();
        rebase(&mut pts, origin);
        pts
    };
    let packets = Series {
        name: "packets/s".into(),
        points: per_s(|p| p.packets),
    };
    let bytes = Series {
        name: "bytes/s".into(),
        points: per_s(|p| p.bytes),
    };
    charts::dual_line_chart(
        "Traffic over time",
        "time (s from the first packet)",
        &packets,
        &bytes,
        &format!("Buckets of {} s.", view::number(t.bucket_seconds)),
    )
}

/// RTT over time of the worst flows from `rtt.rtt_over_time`
/// (`[{flow, stream, points:[[t, rtt_ms]]}]`); empty when absent or of another shape.
pub fn rtt_chart(flows: &Value) -> String {
    let Some(flows) = serde_json::from_value::<Vec<RttFlow>>(flows.clone())
        .ok()
        .filter(|f| !f.is_empty())
    else {
        return String::new();
    };
    let origin = flows
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.0))
        .fold(f64::INFINITY, f64::min);
    let series: Vec<Series> = flows
        .iter()
        .map(|f| {
            let mut points = f.points.clone();
            rebase(&mut points, origin);
            Series {
                name: match f.stream {
                    Some(s) => format!("stream {s}: {}", f.flow),
                    None => f.flow.clone(),
                },
                points,
            }
        })
        .collect();
    charts::line_chart(
        "RTT over time, worst flows",
        "time (s from the first sample)",
        "RTT (ms)",
        &series,
        "",
    )
}

/// The sections as the template gets them (public for the CSV export and tests).
pub fn sections(report: &Report) -> Vec<Section> {
    view::sections(&view::tree(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
