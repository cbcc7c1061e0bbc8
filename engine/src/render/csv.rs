//! CSV export (`--export-csv DIR`): v5's `summary.csv` and `protocol_distribution.csv`, plus
//! `flows.csv` (the largest conversations with their retransmission stats) and `findings.csv`
//! (every listed finding with its frames and display filter), for spreadsheets and scripts.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::view;
use crate::report::Report;

/// Builds the rows of one file (header first) from the report and its JSON form.
type Rows = fn(&Report, &Map<String, Value>) -> Vec<Vec<String>>;

/// Writes the CSV files into `dir` (created if missing) and returns their paths.
pub fn write_csv(report: &Report, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let tree = view::tree(report);
    let files: [(&str, Rows); 4] = [
        ("summary.csv", summary_rows),
        ("protocol_distribution.csv", protocol_rows),
        ("flows.csv", flow_rows),
        ("findings.csv", finding_rows),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, rows) in files {
        let path = dir.join(name);
        let mut w = ::csv::Writer::from_path(&path).map_err(io::Error::other)?;
        for row in rows(report, &tree) {
            w.write_record(row.iter().map(|c| defuse(c).into_owned()))
                .map_err(io::Error::other)?;
        }
        w.flush()?;
        written.push(path);
    }
    Ok(written)
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula; text from a
/// capture (a DNS name, say) is hostile, so such a cell gets a leading `'` (OWASP "CSV
/// injection"). Numbers, negative ones included, are left as they are.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// A CSV cell: numbers as JSON writes them (full precision), text as is.
fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => view::value_text(other),
    }
}

/// `analysis,metric,value`: every scalar of every analysis (nested ones as `a.b`), metadata
/// first.
pub fn summary_rows(_: &Report, tree: &Map<String, Value>) -> Vec<Vec<String>> {
    let mut rows = vec![row(["analysis", "metric", "value"])];
    fn walk(analysis: &str, prefix: &str, v: &Value, rows: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                for (k, inner) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(analysis, &path, inner, rows);
                }
            }
            // Lists are in flows.csv and findings.csv; here only their length.
            Value::Array(items) => rows.push(vec![
                analysis.to_string(),
                format!("{prefix}.count"),
                items.len().to_string(),
            ]),
            scalar => rows.push(vec![analysis.to_string(), prefix.to_string(), raw(scalar)]),
        }
    }
    if let Some(m) = tree.get("metadata") {
        walk("metadata", "", m, &mut rows);
    }
    for (k, v) in tree
        .iter()
        .filter(|(k, _)| *k != "metadata" && *k != "schema_version")
    {
        walk(k, "", v, &mut rows);
    }
    rows
}

/// `layer,protocol,packets,percent` for layers 3 and 4, then the top TCP/UDP ports.
pub fn protocol_rows(r: &Report, _: &Map<String, Value>) -> Vec<Vec<String>> {
    let mut rows = vec![row(["layer", "protocol", "packets", "percent"])];
    let Some(p) = &r.protocol_distribution else {
        return rows;
    };
    let pct = |m: &std::collections::BTreeMap<String, f64>, k: &str| {
        m.get(k).map(|v| v.to_string()).unwrap_or_default()
    };
    for (k, n) in &p.layer3_distribution {
        rows.push(vec![
            "3".into(),
            k.clone(),
            n.to_string(),
            pct(&p.layer3_percentages, k),
        ]);
    }
    for (k, n) in &p.layer4_distribution {
        rows.push(vec![
            "4".into(),
            k.clone(),
            n.to_string(),
            pct(&p.layer4_percentages, k),
        ]);
    }
    let total = p.total_packets.max(1) as f64;
    for (proto, ports) in [("tcp", &p.top_tcp_ports), ("udp", &p.top_udp_ports)] {
        for port in ports {
            let name = match &port.service {
                Some(s) => format!("{proto}/{} ({s})", port.port),
                None => format!("{proto}/{}", port.port),
            };
            let share = crate::stats::round3(port.packets as f64 * 100.0 / total);
            rows.push(vec![
                "port".into(),
                name,
                port.packets.to_string(),
                share.to_string(),
            ]);
        }
    }
    rows
}

fn endpoint_text(addr: &str, port: u16) -> String {
    match addr.parse::<IpAddr>() {
        Ok(ip) => crate::flow::endpoint(ip, port),
        Err(_) => format!("{addr}:{port}"),
    }
}

/// The largest conversations, each with the retransmission stats of its TCP stream when the
/// stream is among the worst ones.
pub fn flow_rows(r: &Report, _: &Map<String, Value>) -> Vec<Vec<String>> {
    let mut rows = vec![row([
        "protocol",
        "address_a",
        "port_a",
        "address_b",
        "port_b",
        "packets_a_to_b",
        "bytes_a_to_b",
        "packets_b_to_a",
        "bytes_b_to_a",
        "start_time",
        "duration_seconds",
        "tcp_stream",
        "retransmissions",
        "retransmission_rate_pct",
        "severity",
        "limit",
        "window_scale",
        "display_filter",
    ])];
    let Some(c) = &r.conversations else {
        return rows;
    };
    let worst = r
        .retransmission
        .as_ref()
        .map(|x| &x.flow_statistics[..])
        .unwrap_or(&[]);
    for conv in &c.top_conversations {
        let a = endpoint_text(&conv.address_a, conv.port_a);
        let b = endpoint_text(&conv.address_b, conv.port_b);
        let retrans = (conv.protocol == "TCP")
            .then(|| {
                worst
                    .iter()
                    .find(|f| (f.src == a && f.dst == b) || (f.src == b && f.dst == a))
            })
            .flatten();
        let (stream, n, rate, sev) = match retrans {
            Some(f) => (
                f.stream.to_string(),
                f.retransmissions.to_string(),
                f.retransmission_rate_pct.to_string(),
                f.severity.clone(),
            ),
            None => Default::default(),
        };
        // What limited the transfer (T-RAT) and the window scale, from the stream's row in
        // `transfers`.
        let transfer = (conv.protocol == "TCP")
            .then(|| {
                r.transfers
                    .iter()
                    .flat_map(|t| &t.flows)
                    .find(|f| (f.client == a && f.server == b) || (f.client == b && f.server == a))
            })
            .flatten();
        let limit = transfer.and_then(|f| f.limit.clone()).unwrap_or_default();
        let window_scale = transfer.map(|f| f.window_scale.clone()).unwrap_or_default();
        rows.push(vec![
            conv.protocol.clone(),
            conv.address_a.clone(),
            conv.port_a.to_string(),
            conv.address_b.clone(),
            conv.port_b.to_string(),
            conv.packets_a_to_b.to_string(),
            conv.bytes_a_to_b.to_string(),
            conv.packets_b_to_a.to_string(),
            conv.bytes_b_to_a.to_string(),
            conv.start_time.clone(),
            conv.duration_seconds.to_string(),
            stream,
            n,
            rate,
            sev,
            limit,
            window_scale,
            conv.display_filter.clone(),
        ]);
    }
    rows
}

/// Every typed finding: `analysis,cause,severity,frames,scope,description,display_filter`
/// (frames separated by spaces), the diagnosis's causes first (analysis `diagnosis`).
pub fn finding_rows(report: &Report, _: &Map<String, Value>) -> Vec<Vec<String>> {
    let mut rows = vec![row([
        "analysis",
        "cause",
        "severity",
        "frames",
        "flow",
        "description",
        "display_filter",
    ])];
    let causes = report
        .diagnosis
        .iter()
        .flat_map(|d| &d.causes)
        .map(|c| view::Finding {
            analysis: "diagnosis".into(),
            list: c.cause.map(|c| c.as_str().to_string()).unwrap_or_default(),
            severity: c.severity.as_str(),
            frames: c.frames.clone(),
            flow: c.hosts.join(", "),
            description: c.summary.clone(),
            display_filter: c.display_filter.clone(),
        });
    for f in causes.chain(report.findings.iter().map(view::display)) {
        rows.push(vec![
            f.analysis,
            f.list,
            f.severity.to_string(),
            f.frames
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            f.flow,
            f.description,
            f.display_filter,
        ]);
    }
    rows
}
