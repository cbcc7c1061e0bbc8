//! What the renderers show, derived from the report as serialized by serde.
//!
//! The renderers read the report through its JSON form, not its Rust types, so that every
//! analysis that is in the report is shown, including one added after this module was written:
//! its scalars become facts, its nested maps key/value groups, its lists tables, and any listed
//! item that carries a severity, a frame number or a display filter becomes a finding. A few
//! known shapes (the health score, the chart series) are read into typed structs here; when
//! one does not have the expected shape it is simply not drawn.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::report::Report;

/// Rows of a table shown in the page; the JSON keeps the full capped lists.
pub const MAX_TABLE_ROWS: usize = crate::report::MAX_FINDINGS;
/// Rows shown before the rest of a table is folded behind a "more rows" toggle (and the
/// printed page stays short).
pub const VISIBLE_TABLE_ROWS: usize = 25;
/// Columns of a table; the widest finding structs have about 20 fields, beyond that a table is
/// unreadable on a laptop.
pub const MAX_TABLE_COLUMNS: usize = 24;
/// Characters kept of a nested value summarised in one cell.
pub const MAX_CELL_CHARS: usize = 160;
/// Findings shown in the overview ("top findings") and the console summary.
pub const TOP_FINDINGS: usize = 15;
/// Items of a list of scalars shown in one cell or fact.
const MAX_INLINE_ITEMS: usize = 12;
/// Depth of nested objects walked into; the report is at most four levels deep.
const MAX_DEPTH: usize = 4;

/// Report keys that are drawn as charts instead of tables (their series are long and
/// meaningless as numbers).
pub const CHARTED_KEYS: &[(&str, &str)] = &[
    ("throughput", "timeline"),
    ("rtt", "rtt_over_time"),
    ("dns", "response_time_histogram"),
];

/// Severity words, most severe first; every finding is normalised to one of them.
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];

/// One analysis of the report, ready to display.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    /// The report's JSON key (`dns`, `tcp_reset`...).
    pub key: String,
    pub title: String,
    /// Scalars of the section.
    pub facts: Vec<Fact>,
    /// Nested maps of scalars (thresholds, distributions, statistics).
    pub groups: Vec<Group>,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Group {
    pub title: String,
    pub facts: Vec<Fact>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Path of the list in the section, e.g. `categories.syn_timeout`.
    pub path: String,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Items in the report's list (the table may show fewer).
    pub total: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub text: String,
    /// `num`, `code` (display filters), `sev` (severity word) or `text`.
    pub kind: &'static str,
    /// For `sev` cells: the normalised severity (CSS class).
    pub sev: &'static str,
}

/// One listed item that points at something to look at in the capture.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Finding {
    /// The report key of the analysis.
    pub analysis: String,
    /// The list in that analysis (`retransmissions`, `gaps`...).
    pub list: String,
    /// One of [`SEVERITIES`].
    pub severity: &'static str,
    /// 1-based frame numbers, as in Wireshark.
    pub frames: Vec<u64>,
    pub flow: String,
    pub description: String,
    pub display_filter: String,
}

/// The health score, when the report has one (`health_score`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Health {
    pub overall_score: f64,
    pub qos_class: Option<Value>,
    pub severity: String,
    pub recommendations: Vec<Recommendation>,
}

/// v5 gives recommendations as text; a richer object is shown by its main text field.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Recommendation {
    Text(String),
    Detailed(Map<String, Value>),
}

impl Recommendation {
    pub fn text(&self) -> String {
        match self {
            Recommendation::Text(t) => t.clone(),
            Recommendation::Detailed(m) => {
                let main = ["recommendation", "message", "text", "action", "description"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str));
                let metric = ["metric", "metric_name", "title"]
                    .iter()
                    .find_map(|k| m.get(*k).and_then(Value::as_str));
                match (metric, main) {
                    (Some(a), Some(b)) => format!("{a}: {b}"),
                    (None, Some(b)) => b.to_string(),
                    _ => compact(&Value::Object(m.clone()), MAX_CELL_CHARS),
                }
            }
        }
    }
}

/// The report as a JSON tree, with its top-level keys in report order.
pub fn tree(report: &Report) -> Map<String, Value> {
    match serde_json::to_value(report) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Top-level keys that are not analyses.
fn is_analysis_key(key: &str) -> bool {
    !matches!(
        key,
        "schema_version" | "metadata" | "diagnosis" | "findings"
    )
}

/// Every analysis present in the report, in report order.
pub fn sections(tree: &Map<String, Value>) -> Vec<Section> {
    tree.iter()
        .filter(|(k, v)| is_analysis_key(k) && !v.is_null())
        .map(|(k, v)| section(k, v))
        .collect()
}

fn section(key: &str, value: &Value) -> Section {
    let mut s = Section {
        key: key.to_string(),
        title: section_title(key),
        ..Section::default()
    };
    match value {
        Value::Object(m) => walk_object(key, "", m, 0, &mut s),
        other => s.facts.push(Fact {
            label: "value".into(),
            value: scalar_text(other),
        }),
    }
    s
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_object(section: &str, prefix: &str, m: &Map<String, Value>, depth: usize, s: &mut Section) {
    let mut own = Vec::new();
    for (k, v) in m {
        let path = join_path(prefix, k);
        if depth == 0 && CHARTED_KEYS.contains(&(section, k.as_str())) {
            continue;
        }
        match v {
            Value::Array(items) if items.is_empty() => own.push(Fact {
                label: label(k),
                value: "none".into(),
            }),
            Value::Array(items) if items.iter().any(Value::is_object) => {
                s.tables.push(table_of_list(&path, items));
            }
            Value::Array(items) if items.iter().any(Value::is_array) => {
                s.tables.push(table_of_tuples(&path, items));
            }
            Value::Object(inner) if depth < MAX_DEPTH && is_map_of_objects(inner) => {
                s.tables.push(table_of_map(&path, inner));
            }
            Value::Object(inner) if depth < MAX_DEPTH => {
                walk_object(section, &path, inner, depth + 1, s);
            }
            other => own.push(Fact {
                label: label(k),
                value: scalar_text(other),
            }),
        }
    }
    if own.is_empty() {
        return;
    }
    if depth == 0 {
        s.facts.extend(own);
    } else {
        s.groups.push(Group {
            title: path_title(prefix),
            facts: own,
        });
    }
}

fn is_map_of_objects(m: &Map<String, Value>) -> bool {
    !m.is_empty() && m.values().all(Value::is_object)
}

/// Columns: the keys of the listed objects, in first-seen order.
fn columns_of<'a>(items: impl Iterator<Item = &'a Map<String, Value>>) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for obj in items.take(MAX_TABLE_ROWS) {
        for k in obj.keys() {
            if cols.len() >= MAX_TABLE_COLUMNS {
                return cols;
            }
            if !cols.iter().any(|c| c == k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

fn table_of_list(path: &str, items: &[Value]) -> Table {
    let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    let keys = columns_of(objects.iter().copied());
    let rows = objects
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|o| keys.iter().map(|k| cell(k, o.get(k))).collect())
        .collect();
    Table {
        path: path.to_string(),
        title: path_title(path),
        columns: keys.iter().map(|k| label(k)).collect(),
        rows,
        total: items.len(),
    }
}

fn table_of_map(path: &str, m: &Map<String, Value>) -> Table {
    let keys = columns_of(m.values().filter_map(Value::as_object));
    let rows = m
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|(name, v)| {
            let mut row = vec![Cell {
                text: name.clone(),
                kind: "text",
                sev: "",
            }];
            row.extend(keys.iter().map(|k| cell(k, v.get(k))));
            row
        })
        .collect();
    let mut columns = vec![String::new()];
    columns.extend(keys.iter().map(|k| label(k)));
    Table {
        path: path.to_string(),
        title: path_title(path),
        columns,
        rows,
        total: m.len(),
    }
}

/// A list of tuples, e.g. `[[upper_edge_ms, count]]`: one column per position.
fn table_of_tuples(path: &str, items: &[Value]) -> Table {
    let width = items
        .iter()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(MAX_TABLE_COLUMNS);
    let rows = items
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|v| {
            (0..width)
                .map(|i| cell("", v.as_array().and_then(|a| a.get(i))))
                .collect()
        })
        .collect();
    Table {
        path: path.to_string(),
        title: path_title(path),
        columns: (1..=width).map(|i| format!("#{i}")).collect(),
        rows,
        total: items.len(),
    }
}

fn is_filter_key(k: &str) -> bool {
    k == "display_filter" || k == "filter" || k.ends_with("_filter")
}

fn is_severity_key(k: &str) -> bool {
    matches!(k, "severity" | "status" | "threshold_status")
}

fn cell(key: &str, v: Option<&Value>) -> Cell {
    let Some(v) = v else {
        return Cell {
            text: String::new(),
            kind: "text",
            sev: "",
        };
    };
    if is_severity_key(key) {
        if let Some(t) = v.as_str() {
            return Cell {
                text: t.to_string(),
                kind: "sev",
                sev: severity_word(t).unwrap_or("info"),
            };
        }
    }
    let kind = if is_filter_key(key) {
        "code"
    } else if v.is_number() {
        "num"
    } else {
        "text"
    };
    Cell {
        text: value_text(v),
        kind,
        sev: "",
    }
}

/// A value shown in one place: scalars as text, lists and objects summarised.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            let mut parts: Vec<String> = items
                .iter()
                .take(MAX_INLINE_ITEMS)
                .map(scalar_text)
                .collect();
            if items.len() > MAX_INLINE_ITEMS {
                parts.push(format!("… ({} in all)", items.len()));
            }
            parts.join(", ")
        }
        Value::Array(items) => format!("({} items)", items.len()),
        Value::Object(_) => compact(v, MAX_CELL_CHARS),
        other => scalar_text(other),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => number(f),
            _ => n.to_string(),
        },
        Value::String(s) => readable_time(s).unwrap_or_else(|| s.clone()),
        other => value_text(other),
    }
}

/// `2010-04-07T17:29:29.782934Z` → `2010-04-07 17:29:29.782934 UTC`: a space lets the line
/// wrap between date and time, and says the zone in words. Other text is `None`.
pub fn readable_time(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let iso = b.len() >= 20
        && b.len() <= 40
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit());
    iso.then(|| format!("{} {} UTC", &s[..10], &s[11..s.len() - 1]))
}

/// A float with as many decimals as it needs (at most 3 above 1, 6 below).
pub fn number(f: f64) -> String {
    if !f.is_finite() {
        return "–".into();
    }
    let decimals = if f.abs() >= 1000.0 {
        1
    } else if f.abs() >= 1.0 || f == 0.0 {
        3
    } else {
        6
    };
    let s = format!("{f:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `k=v; k=v` for a nested object, cut at `max` characters.
fn compact(v: &Value, max: usize) -> String {
    let text = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => value_text(other),
    };
    truncate(&text, max)
}

pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Words written in capitals in labels.
const ACRONYMS: &[&str] = &[
    "ip", "ips", "tcp", "udp", "icmp", "dns", "rtt", "qos", "ttl", "mtu", "pmtu", "syn", "ack",
    "rst", "fin", "sack", "dsack", "ddos", "c2", "id", "rfc", "ipv4", "ipv6", "arp", "isn", "rto",
    "cv", "iso", "psh", "mss", "vlan", "k8s", "l3", "l4", "utc", "pps",
];

/// `total_retransmissions` → "Total retransmissions"; `mean_ms` → "Mean (ms)".
pub fn label(key: &str) -> String {
    let (stem, unit) = [
        ("_ms", " (ms)"),
        ("_pct", " (%)"),
        ("_percent", " (%)"),
        ("_seconds", " (s)"),
        ("_bytes", " (bytes)"),
        ("_mbps", " (Mbit/s)"),
        ("_kbps", " (kbit/s)"),
    ]
    .iter()
    .find_map(|(suffix, unit)| key.strip_suffix(suffix).map(|s| (s, *unit)))
    .unwrap_or((key, ""));
    let words: Vec<String> = stem
        .split('_')
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| {
            if w.eq_ignore_ascii_case("synack") {
                "SYN/ACK".to_string()
            } else if ACRONYMS.contains(&w.to_ascii_lowercase().as_str()) {
                w.to_ascii_uppercase()
            } else if i == 0 {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            } else {
                w.to_string()
            }
        })
        .collect();
    let text = words.join(" ");
    if text.is_empty() {
        unit.trim().to_string()
    } else {
        format!("{text}{unit}")
    }
}

fn path_title(path: &str) -> String {
    path.split('.').map(label).collect::<Vec<_>>().join(" › ")
}

/// The heading of each analysis; a key added later gets its words.
pub fn section_title(key: &str) -> String {
    match crate::analyzers::entry(key) {
        Some(e) => e.title.to_string(),
        None => label(key),
    }
}

/// Maps the severity-like words the analyses use onto [`SEVERITIES`]; `None` for words that
/// mean "nothing wrong".
pub fn severity_word(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "critical" | "emergency" | "severe" => Some("critical"),
        "high" | "error" | "timeout" | "poor" | "failed" => Some("high"),
        "medium" | "warning" | "moderate" | "slow" => Some("medium"),
        "low" | "minor" => Some("low"),
        "" | "none" | "ok" | "normal" | "success" | "good" | "excellent" => None,
        _ => Some("info"),
    }
}

pub fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SEVERITIES.len())
}

/// The typed findings of the report (`findings`), for display: nothing is guessed from the
/// sections' field names.
pub fn findings(tree: &Map<String, Value>) -> Vec<Finding> {
    let typed: Vec<crate::finding::Finding> = tree
        .get("findings")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    typed.into_iter().map(|f| display(&f)).collect()
}

/// One typed finding as the tables show it.
pub fn display(f: &crate::finding::Finding) -> Finding {
    let mut scope: Vec<String> = f.hosts.clone();
    match f.streams.as_slice() {
        [] => {}
        [one] => scope.push(format!("stream {one}")),
        many => scope.push(format!(
            "streams {}",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    let evidence = f.evidence.text();
    let description = if evidence.is_empty() {
        f.summary.clone()
    } else {
        format!("{} ({evidence})", f.summary)
    };
    Finding {
        analysis: f.analysis.clone(),
        list: f.cause.map(|c| c.as_str().to_string()).unwrap_or_default(),
        severity: f.severity.as_str(),
        frames: f.frames.clone(),
        flow: scope.join(", "),
        description: truncate(&description, MAX_CELL_CHARS * 3),
        display_filter: f.display_filter.clone(),
    }
}

/// The report's diagnosis, when it has one.
pub fn diagnosis(tree: &Map<String, Value>) -> Option<crate::diagnosis::Diagnosis> {
    tree.get("diagnosis")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The most severe findings first (stable: report order within a severity).
pub fn top_findings(mut all: Vec<Finding>, n: usize) -> Vec<Finding> {
    all.sort_by_key(|f| severity_rank(f.severity));
    all.truncate(n);
    all
}

pub fn health(tree: &Map<String, Value>) -> Option<Health> {
    tree.get("health_score")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// QoS class as text (v5 gives a number 0–5; ITU-T Y.1541 classes).
pub fn qos_text(h: &Health) -> String {
    match &h.qos_class {
        Some(Value::Number(n)) => format!("QoS class {n}"),
        Some(Value::String(s)) => s.clone(),
        Some(other) => value_text(other),
        None => String::new(),
    }
}
