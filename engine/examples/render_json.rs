//! Renders a saved JSON report as HTML: `cargo run -p engine --example render_json -- IN.json OUT.html`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: render_json REPORT.json OUT.html");
        std::process::exit(2);
    };
    let json = std::fs::read_to_string(input).unwrap_or_else(|e| {
        eprintln!("{input}: {e}");
        std::process::exit(1)
    });
    match engine::render::html::html_of_json(&json) {
        Ok(page) => {
            if let Err(e) = std::fs::write(output, page) {
                eprintln!("{output}: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("{input}: not a JSON report: {e}");
            std::process::exit(1);
        }
    }
}
