//! `pcap_analyzer`: the command line of pcap-analyzer (drop-in for v5's `pcap_analyzer analyze`).
//! It only parses arguments, runs the engine and prints; everything else is in the `engine` crate.
// The doc comments of the arguments are their `--help` texts, where <NAME> means a placeholder.
#![allow(rustdoc::invalid_html_tags)]

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use engine::{Config, Options, Report};

mod legacy;
mod summary;

const EXIT_HELP: &str = "\
Exit codes:
  0  analysis done (the report may carry warnings, e.g. a truncated capture)
  1  the input is not a capture, or could not be read
  2  bad command line
  3  bad configuration file
  4  a report could not be written
`db` commands exit with 1 when they fail (nothing is half-written).";

#[derive(Parser)]
#[command(name = "pcap_analyzer", version, about = "Analyze network captures (pcap, pcapng, gzip) with tshark-grade accuracy", after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze a capture and write its reports.
    Analyze(AnalyzeArgs),
    /// Cut one TCP stream's packets out of a capture (Wireshark's `tcp.stream == N`), as a
    /// capture of the same format, link type and time precision.
    Slice(SliceArgs),
    /// Print the thresholds in effect.
    ShowConfig {
        /// v5 config.yaml with a `thresholds:` section.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Database of the web service (Postgres): migrations and the v4/v5 data import.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the migrations as the owner, create or update the application role (DML rights
    /// only) and create the brise-glace admin when no admin exists (DATABASE_URL,
    /// DATABASE_SSL_MODE, ADMIN_PASSWORD, APP_DATABASE_USER/PASSWORD from the environment).
    Upgrade,
    /// Import the users, tasks and progress snapshots of a v4/v5 SQLite database in one
    /// transaction, verified before the commit. Re-running imports nothing twice.
    ImportV4 {
        /// The v4/v5 database: sqlite:///relative/path, sqlite:////absolute/path or a path.
        #[arg(long, value_name = "URL")]
        sqlite_url: String,
        /// Target Postgres (default: DATABASE_URL); its schema must be up to date (`db upgrade`).
        #[arg(long, value_name = "URL")]
        postgres_url: Option<String>,
        /// Do everything, print the counts, then roll back.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct SliceArgs {
    /// Capture file (pcap or pcapng, optionally gzip-compressed: the cut is then uncompressed).
    file: PathBuf,
    /// The stream, as the report and Wireshark number it (`tcp.stream`).
    #[arg(long, value_name = "N")]
    stream: u64,
    /// Where to write the cut (`-`: stdout); default `<file stem>.stream<N>.pcap` (or
    /// `.pcapng`) in the current directory.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Capture file (pcap or pcapng, optionally gzip-compressed).
    file: PathBuf,
    /// Gap threshold in seconds: report per-flow gaps longer than this (and only handshakes,
    /// RTT samples and DNS answers at least this slow in the lists).
    #[arg(short, long)]
    latency: Option<f64>,
    /// v5 config.yaml (thresholds and reports.output_dir).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Base name of the reports: <output_dir>/<NAME>.json (default pcap_analysis_<UTC timestamp>).
    #[arg(short, long)]
    output: Option<String>,
    /// Do not write the reports in <output_dir>.
    #[arg(long)]
    no_report: bool,
    /// Also write the JSON report to PATH; `-` writes it alone to stdout (the summary then goes to stderr).
    #[arg(long, value_name = "PATH")]
    json: Option<String>,
    /// Also write the HTML report to PATH (one self-contained file).
    #[arg(long, value_name = "PATH")]
    export_html: Option<PathBuf>,
    /// Write summary.csv, protocol_distribution.csv, flows.csv and findings.csv into DIR.
    #[arg(long, value_name = "DIR")]
    export_csv: Option<PathBuf>,
    /// Analyses to run, by report key, comma-separated (e.g. `retransmission,dns`); `core` is the
    /// engine's first-look set (timestamps, handshakes, retransmissions, top talkers, DNS,
    /// protocols, conversations); default: all of them.
    #[arg(long, value_name = "LIST")]
    analyses: Option<String>,
    /// Security detectors also consider 127.0.0.0/8 and ::1.
    #[arg(long)]
    include_localhost: bool,
    /// Run every analysis on one thread (by default a second core shares them).
    #[arg(long)]
    single_thread: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Analyze(args) => analyze(args),
        Command::Slice(args) => slice(args),
        Command::ShowConfig { config } => match load_config(config.as_deref()) {
            Ok(c) => {
                print!("{}", summary::config_table(&c));
                ExitCode::SUCCESS
            }
            Err(e) => fail(3, &e),
        },
        Command::Db { command } => match run_db(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &e),
        },
    }
}

/// `slice`: exit 1 when the capture cannot be read or holds no such stream, 4 when the cut
/// cannot be written.
fn slice(args: SliceArgs) -> ExitCode {
    let open =
        || File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()));
    let cut = match open().and_then(|f| {
        engine::slice::locate(std::io::BufReader::new(f), args.stream)
            .with_context(|| format!("cannot read {}", args.file.display()))
    }) {
        Ok(cut) if cut.frames > 0 => cut,
        Ok(_) => {
            let e = anyhow::anyhow!(
                "{} holds no TCP stream {}",
                args.file.display(),
                args.stream
            );
            return fail(1, &e);
        }
        Err(e) => return fail(1, &e),
    };
    let extension = if cut.format == "pcapng" {
        "pcapng"
    } else {
        "pcap"
    };
    let output = args.output.clone().unwrap_or_else(|| {
        let stem = args.file.file_stem().unwrap_or_default().to_string_lossy();
        let stem = stem.trim_end_matches(".pcap").trim_end_matches(".pcapng");
        PathBuf::from(format!("{stem}.stream{}.{extension}", args.stream))
    });
    let written = open().and_then(|mut capture| {
        let to_stdout = output.as_os_str() == "-";
        let mut out: Box<dyn Write> = match to_stdout {
            true => Box::new(std::io::stdout().lock()),
            false => Box::new(std::io::BufWriter::new(
                File::create(&output)
                    .with_context(|| format!("cannot create {}", output.display()))?,
            )),
        };
        engine::slice::write(&cut, &mut capture, &mut out)
            .with_context(|| format!("cannot write {}", output.display()))
    });
    match written {
        Ok(bytes) => {
            if !args.quiet && output.as_os_str() != "-" {
                eprintln!(
                    "{}: {} frames of TCP stream {} (frames {} to {}), {bytes} bytes, {}",
                    output.display(),
                    cut.frames,
                    args.stream,
                    cut.first_frame,
                    cut.last_frame,
                    cut.format
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(4, &e),
    }
}

fn run_db(command: DbCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        DbCommand::Upgrade => runtime.block_on(db_upgrade()),
        DbCommand::ImportV4 {
            sqlite_url,
            postgres_url,
            dry_run,
        } => runtime.block_on(db_import_v4(&sqlite_url, postgres_url, dry_run)),
    }
}

/// Settings from the environment, with `DATABASE_URL` replaced when given. The database
/// commands use no signing key, so an unset `ENVIRONMENT` is development here (the functions
/// take it as production); give `DATABASE_SSL_MODE` for a remote database.
fn settings(database_url: Option<String>) -> anyhow::Result<common::Settings> {
    common::Settings::from_lookup(|k| match (k, &database_url) {
        ("DATABASE_URL", Some(url)) => Some(url.clone()),
        ("ENVIRONMENT", _) => std::env::var(k).ok().or_else(|| Some("development".into())),
        _ => std::env::var(k).ok(),
    })
    .context("configuration")
}

async fn db_upgrade() -> anyhow::Result<()> {
    let settings = settings(None)?;
    let pool = db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    let admin_password = settings.admin_password.as_ref().map(|s| s.expose());
    // As `migrate`: run as the owner, it also creates or updates the application role.
    let created = db::upgrade_as_owner(&pool, admin_password, settings.app_role.as_ref())
        .await
        .context("database upgrade failed")?;
    println!("{}", db::upgrade_outcome(created));
    Ok(())
}

async fn db_import_v4(
    sqlite_url: &str,
    postgres_url: Option<String>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let path = legacy::sqlite_path(sqlite_url)?;
    // Everything is read and checked before Postgres is touched.
    let data = legacy::read(&path)?;
    println!(
        "read {}: {} users, {} tasks, {} progress snapshots",
        path.display(),
        data.users.len(),
        data.tasks.len(),
        data.snapshots.len()
    );
    let settings = settings(postgres_url)?;
    let pool = db::connect(&settings.database)
        .await
        .context("connecting to Postgres")?;
    let r = db::import::import_legacy(&pool, &data, dry_run)
        .await
        .context("import failed, nothing was written (run `pcap_analyzer db upgrade` first if the schema is missing)")?;
    let verb = if dry_run { "would import" } else { "imported" };
    println!(
        "users:     {} {verb}, {} already present ({} matched an existing account by username)",
        r.users.imported, r.users.already_present, r.users_matched_by_username
    );
    println!(
        "tasks:     {} {verb}, {} already present ({} without owner: admins only; {} unfinished, marked failed)",
        r.tasks.imported, r.tasks.already_present, r.tasks_without_owner, r.tasks_interrupted
    );
    println!(
        "snapshots: {} {verb}, {} already present",
        r.snapshots.imported, r.snapshots.already_present
    );
    if r.snapshots_without_task > 0 {
        println!(
            "           {} skipped: their task is not in the SQLite database",
            r.snapshots_without_task
        );
    }
    if dry_run {
        println!("dry run: verified, then rolled back; nothing was written");
    } else {
        println!("verified: every user, task and snapshot read is in Postgres");
    }
    Ok(())
}

fn fail(code: u8, e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(code)
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Config::from_yaml(&text).with_context(|| format!("in {}", p.display()))
        }
    }
}

fn analyze(args: AnalyzeArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(3, &e),
    };
    let analyses = match parse_analyses(args.analyses.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(2, &e),
    };
    let report = match run(&args, &config, analyses) {
        Ok(r) => r,
        Err(e) => return fail(1, &e),
    };
    let json_to_stdout = args.json.as_deref() == Some("-");
    if let Err(e) = write_reports(&args, &config, &report) {
        return fail(4, &e);
    }
    if !args.quiet {
        let text = summary::console(&report);
        if json_to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    ExitCode::SUCCESS
}

/// `--analyses`: report keys, with `core` and `all` as presets.
fn parse_analyses(list: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "all" => return Ok(Vec::new()),
            "core" => keys.extend(engine::analyzers::CORE.iter().map(|k| k.to_string())),
            key if engine::analyzers::ALL.contains(&key) => keys.push(key.to_string()),
            other => anyhow::bail!(
                "unknown analysis '{other}'; known: core, all, {}",
                engine::analyzers::ALL.join(", ")
            ),
        }
    }
    Ok(keys)
}

fn run(args: &AnalyzeArgs, config: &Config, analyses: Vec<String>) -> anyhow::Result<Report> {
    let path = &args.file;
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let size = file.metadata().map(|m| m.len()).ok();
    let options = Options {
        latency: args.latency,
        include_localhost: args.include_localhost,
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file_size: size,
        analyses,
        single_thread: args.single_thread,
        ..Options::default()
    };
    // A progress bar only where a person watches: stderr is a terminal and the file is large
    // enough to take more than a blink.
    let bar = (std::io::stderr().is_terminal() && !args.quiet && size.unwrap_or(0) > 32 << 20)
        .then(|| {
            let bar = indicatif::ProgressBar::new(size.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let result = engine::analyze_with_progress(reader, config, &options, |pos| {
        if let Some(b) = &bar {
            b.set_position(pos);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.with_context(|| format!("{}", path.display()))
}

fn write_reports(args: &AnalyzeArgs, config: &Config, report: &Report) -> anyhow::Result<()> {
    let json = report.to_json();
    let json_to_stdout = args.json.as_deref() == Some("-");
    // With `--json -` stdout carries the JSON alone; every other line goes to stderr.
    let say = |line: String| {
        if args.quiet {
        } else if json_to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    match args.json.as_deref() {
        Some("-") => {
            let mut out = std::io::stdout().lock();
            out.write_all(json.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("cannot write {path}"))?
        }
        None => {}
    }
    // Rendered once, only when some output needs it.
    let mut html: Option<String> = None;
    let mut page = || {
        html.get_or_insert_with(|| engine::render::html(report))
            .clone()
    };
    if let Some(path) = &args.export_html {
        std::fs::write(path, page()).with_context(|| format!("cannot write {}", path.display()))?;
        say(format!("HTML report: {}", path.display()));
    }
    if let Some(dir) = &args.export_csv {
        let files = engine::render::write_csv(report, dir)
            .with_context(|| format!("cannot write the CSV files in {}", dir.display()))?;
        say(format!(
            "CSV files: {} ({} files)",
            dir.display(),
            files.len()
        ));
    }
    if args.no_report {
        return Ok(());
    }
    let dir = Path::new(&config.reports.output_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = args.output.clone().unwrap_or_else(default_name);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    say(format!("JSON report: {}", path.display()));
    let path = dir.join(format!("{name}.html"));
    std::fs::write(&path, page()).with_context(|| format!("cannot write {}", path.display()))?;
    say(format!("HTML report: {}", path.display()));
    Ok(())
}

/// v5's default base name, `pcap_analysis_<YYYYmmdd_HHMMSS>` (UTC here).
fn default_name() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    format!(
        "pcap_analysis_{}_{}",
        &digits[..8.min(digits.len())],
        &digits[8.min(digits.len())..]
    )
}
