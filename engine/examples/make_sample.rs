//! Writes the sample capture shipped in `samples/sample.pcap`:
//! `cargo run -p engine --example make_sample -- samples/sample.pcap`.
fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "samples/sample.pcap".into());
    std::fs::write(&out, engine::sample::sample_capture())?;
    println!("wrote {out} ({} packets)", engine::sample::SAMPLE_PACKETS);
    Ok(())
}
