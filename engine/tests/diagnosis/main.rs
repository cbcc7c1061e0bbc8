//! The diagnosis against what an experienced engineer names: the real-world captures labelled in
//! `../shared/captures/DIAGNOSIS.tsv` and our own recorded scenarios (`tests/scenarios/LABELS.tsv`).
//! For each capture the first cause must be the labelled primary or an allowed one, no forbidden
//! cause may appear at medium or above, and a healthy capture has no high or critical cause and
//! scores at least 90. Prints every capture's verdict and every miss.

use std::path::{Path, PathBuf};

use engine::finding::Severity;
use engine::{analyze, Config, Options, Report};

/// Share of captures whose first cause is right (the bar).
const MIN_ACCURACY: f64 = 0.95;

struct Label {
    file: String,
    primary: String,
    allowed: Vec<String>,
    forbidden: Vec<String>,
}

fn list(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "-")
        .map(str::to_string)
        .collect()
}

fn labels(path: &Path) -> Vec<Label> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split('\t').collect();
    assert_eq!(
        header[..4],
        ["file", "primary", "allowed", "forbidden"],
        "{}",
        path.display()
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Label {
                file: f[0].to_string(),
                primary: f[1].to_string(),
                allowed: list(f.get(2).copied().unwrap_or("")),
                forbidden: list(f.get(3).copied().unwrap_or("")),
            }
        })
        .collect()
}

fn report(path: &Path) -> Report {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let options = Options {
        file_name: path.file_name().unwrap().to_string_lossy().into(),
        ..Options::default()
    };
    analyze(&bytes[..], &Config::default(), &options)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What is wrong with one capture's diagnosis (empty when it is right), and whether its first
/// cause is right.
fn judge(label: &Label, r: &Report) -> (bool, Vec<String>) {
    let d = r.diagnosis.as_ref().expect("the report has a diagnosis");
    let first = d.primary().to_string();
    let right = first == label.primary || label.allowed.contains(&first);
    let mut problems = Vec::new();
    if !right {
        problems.push(format!("first cause {first}, labelled {}", label.primary));
    }
    for c in &d.causes {
        let word = c.cause.map(|c| c.as_str()).unwrap_or("");
        if c.severity >= Severity::Medium && label.forbidden.iter().any(|f| f == word) {
            problems.push(format!("forbidden {word} at {}", c.severity));
        }
    }
    if label.primary == "healthy" {
        if d.worst() >= Severity::High {
            problems.push(format!("healthy capture with a {} cause", d.worst()));
        }
        let score = r
            .health_score
            .as_ref()
            .map(|h| h.overall_score)
            .unwrap_or(0.0);
        if score < 90.0 {
            problems.push(format!("healthy capture scores {score}"));
        }
    }
    (right, problems)
}

fn run(dir: &Path, labels_file: &Path) -> (usize, usize, Vec<String>) {
    let labels = labels(labels_file);
    assert!(!labels.is_empty(), "no labels in {}", labels_file.display());
    let (mut right, mut misses) = (0, Vec::new());
    for label in &labels {
        let r = report(&dir.join(&label.file));
        let (ok, problems) = judge(label, &r);
        let d = r.diagnosis.as_ref().expect("a diagnosis");
        let causes: Vec<String> = d
            .causes
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c.cause.map(|c| c.as_str()).unwrap_or("?"),
                    c.severity
                )
            })
            .collect();
        let score = r
            .health_score
            .as_ref()
            .map(|h| h.overall_score)
            .unwrap_or(0.0);
        println!(
            "{} {:<42} labelled {:<24} got [{}] score {score}",
            if problems.is_empty() { "ok  " } else { "MISS" },
            label.file,
            label.primary,
            causes.join(", ")
        );
        right += usize::from(ok);
        if !problems.is_empty() {
            misses.push(format!("{}: {}", label.file, problems.join("; ")));
        }
    }
    (right, labels.len(), misses)
}

fn shared_captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures")
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

#[test]
fn the_first_cause_is_the_one_an_engineer_names_on_real_and_recorded_captures() {
    let mut sets = vec![(shared_captures(), shared_captures().join("DIAGNOSIS.tsv"))];
    let ours = scenarios().join("LABELS.tsv");
    let have_ours = ours.exists();
    if have_ours {
        sets.push((scenarios(), ours.clone()));
    }
    let (mut right, mut total, mut misses) = (0, 0, Vec::new());
    for (dir, labels_file) in sets {
        let (r, t, m) = run(&dir, &labels_file);
        println!(
            "diagnosis {}: first cause right on {r} of {t}",
            labels_file.display()
        );
        right += r;
        total += t;
        misses.extend(m);
    }
    let accuracy = right as f64 / total as f64;
    println!(
        "diagnosis agreement: {right} of {total} first causes right ({:.1} %)",
        accuracy * 100.0
    );
    for m in &misses {
        println!("miss: {m}");
    }
    assert!(
        have_ours,
        "our labelled scenarios are missing: {}",
        ours.display()
    );
    assert!(
        accuracy >= MIN_ACCURACY,
        "first cause right on {right} of {total}"
    );
    let rule_breaks: Vec<&String> = misses
        .iter()
        .filter(|m| m.contains("forbidden") || m.contains("healthy capture"))
        .collect();
    assert!(rule_breaks.is_empty(), "{rule_breaks:#?}");
}
