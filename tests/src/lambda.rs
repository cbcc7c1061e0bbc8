//! The analyzer as AWS runs it: the real binary under `cargo lambda watch` (the Lambda runtime
//! API emulator), invoked with `cargo lambda invoke --data-file` like a developer would.
//!
//! cargo-lambda comes from PyPI into `.local/venv-lambda` (`scripts/lambda-tools`, which the
//! test command runs first). When it is missing the test fails saying so; it is never skipped.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long `watch` may take to listen (it compiles nothing before the first invoke).
const WATCH_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The first invoke makes `watch` build the analyzer binary in debug, which after a clean
/// checkout links (the test build compiled its dependencies already); the analysis takes about a
/// second. A failed build never answers: give up after this.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
/// Grace between SIGTERM and SIGKILL when stopping `watch` and what it started.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What AWS escapes in S3 notification keys (everything but unreserved characters; RFC 3986).
const S3_KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo-lambda executable: `$CARGO_LAMBDA`, else the project venv, else `PATH`.
pub fn cargo_lambda() -> PathBuf {
    let candidates = std::env::var_os("CARGO_LAMBDA")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo_root().join(".local/venv-lambda/bin/cargo-lambda")])
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("cargo-lambda"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    for path in candidates {
        let runs = Command::new(&path)
            .args(["lambda", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runs {
            return path;
        }
    }
    panic!("cargo-lambda not found: run scripts/lambda-tools (pip install cargo-lambda ziglang into .local/venv-lambda)")
}

/// `tests/events/s3-put.json` pointed at `bucket`/`key`: one SQS message carrying one S3
/// `ObjectCreated:Put` notification, the key percent-encoded as AWS sends it.
pub fn s3_put_event(bucket: &str, key: &str, size_bytes: usize) -> Value {
    let path = repo_root().join("tests/events/s3-put.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).expect("s3-put.json is JSON");
    let record = &mut event["Records"][0];
    let mut body: Value =
        serde_json::from_str(record["body"].as_str().expect("body string")).expect("S3 event");
    let s3 = &mut body["Records"][0]["s3"];
    s3["bucket"]["name"] = bucket.into();
    s3["bucket"]["arn"] = format!("arn:aws:s3:::{bucket}").into();
    s3["object"]["key"] = utf8_percent_encode(key, S3_KEY_ESCAPES).to_string().into();
    s3["object"]["size"] = size_bytes.into();
    record["body"] = body.to_string().into();
    event
}

/// A running `cargo lambda watch` in its own process group; stopped (with everything it
/// started) when dropped, so a failing test leaves no server behind.
pub struct Watch {
    child: Child,
    pub port: u16,
    cargo_lambda: PathBuf,
}

impl Watch {
    /// Starts `cargo lambda watch` in the repository on a free port, with `env` on top of the
    /// test's environment (the analyzer binary reads its settings from the environment).
    pub fn start(cargo_lambda: &Path, env: &[(String, String)]) -> Watch {
        let port = free_port();
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--ignore-changes", "--quiet"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(repo_root())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} lambda watch: {e}", cargo_lambda.display())
            });
        let mut watch = Watch {
            child,
            port,
            cargo_lambda: cargo_lambda.to_path_buf(),
        };
        let deadline = Instant::now() + WATCH_START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!("cargo lambda watch exited during start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on 127.0.0.1:{port} within {WATCH_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        watch
    }

    /// `cargo lambda invoke <function> --data-file <file> --output-format json` against this
    /// watch; returns the function's answer. Blocking: call it from `spawn_blocking`.
    pub fn invoke(&self, function: &str, data_file: &Path) -> Value {
        let mut invoke = Command::new(&self.cargo_lambda)
            .args(["lambda", "invoke", function, "--output-format", "json"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(data_file)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start cargo lambda invoke");
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        while invoke.try_wait().expect("waiting for invoke").is_none() {
            if Instant::now() > deadline {
                let _ = invoke.kill();
                panic!("cargo lambda invoke {function} gave no answer within {INVOKE_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let Output {
            status,
            stdout,
            stderr,
        } = invoke.wait_with_output().expect("invoke output");
        let stdout = String::from_utf8_lossy(&stdout);
        assert!(
            status.success(),
            "cargo lambda invoke {function} failed ({status}): {stdout}{}",
            String::from_utf8_lossy(&stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("invoke answered no JSON ({e}): {stdout}"))
    }

    /// Process ids of `watch` and everything it started (cargo, the function), from /proc.
    pub fn process_tree(&self) -> Vec<u32> {
        descendants(self.child.id())
    }

    /// SIGTERM to the group and every descendant (a child may have made a group of its own),
    /// SIGKILL after a grace period, then reaps `watch`.
    fn stop(&mut self) {
        let tree = self.process_tree();
        let group = format!("-{}", self.child.id());
        signal(
            "TERM",
            std::iter::once(group.clone()).chain(tree.iter().map(u32::to_string)),
        );
        let deadline = Instant::now() + STOP_GRACE;
        while tree.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal(
            "KILL",
            std::iter::once(group).chain(tree.iter().filter(|p| alive(**p)).map(u32::to_string)),
        );
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a process exists and is not a zombie waiting to be reaped.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(name: &str, targets: impl Iterator<Item = String>) {
    let targets: Vec<String> = targets.collect();
    // `kill` from procps: no libc binding needed for one signal; errors for already gone
    // processes are expected and ignored.
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .args(&targets)
        .stderr(Stdio::null())
        .status();
}

/// `root` and all its descendants, from the parent ids in /proc/<pid>/stat.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // Fields after the command name (which may contain spaces): state ppid ...
                    let (_, rest) = stat.rsplit_once(')')?;
                    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
                    Some((pid, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}
