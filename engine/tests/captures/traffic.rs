use super::capture_report;

#[test]
fn dump() {
    for f in std::env::var("DUMP")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        std::fs::write(format!("/tmp/ta_{f}.json"), capture_report(f).to_json()).unwrap();
    }
}
