//! The real `tlsdiag` binary in its own process: started with flags, its log
//! kept (bounded) for assertions, signalled like an operator would, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log lines kept per process (the rest are read and dropped).
const KEPT_LINES: usize = 20_000;

pub struct Tlsdiag {
    pub child: Child,
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// The metrics listener, when `--metrics-addr` turned it on.
    pub metrics: Option<SocketAddr>,
    /// The generated certificate it serves, unless `--tls-cert` or ACME
    /// chose another.
    pub cert: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Tlsdiag {
    /// Starts the binary with `args` and waits for its "listening" line.
    /// Listeners default to ephemeral loopback ports and the data and
    /// certificate directories to a temporary one; `args` may choose others.
    pub fn start(args: &[&str]) -> Self {
        Self::start_under(&[], args)
    }

    /// The same, run by `wrapper` (a command and its arguments, the binary
    /// appended): e.g. `setpriv` to start it without a capability.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(env!("CARGO_BIN_EXE_tlsdiag"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_tlsdiag")),
        };
        let given = |flag: &str| args.contains(&flag);
        if !given("--https-addr") {
            cmd.args(["--https-addr", "127.0.0.1:0"]);
        }
        if !given("--http-addr") {
            cmd.args(["--http-addr", "127.0.0.1:0"]);
        }
        if !given("--data-dir") {
            cmd.arg("--data-dir").arg(dir.path().join("data"));
        }
        let certs = dir.path().join("certs");
        if !given("--certs-dir") {
            cmd.arg("--certs-dir").arg(&certs);
        }
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("TLSDIAG_TLS_CERT")
            .env_remove("TLSDIAG_TLS_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tlsdiag");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = std::sync::mpsc::channel();
        // Both pipes are drained for the process's whole life, so it never
        // blocks on a full one.
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (log, found) = (log.clone(), found.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("tlsdiag listening") {
                        let _ = found.send(line.clone());
                    }
                    let mut log = log.lock().expect("log");
                    if log.len() < KEPT_LINES {
                        log.push(line);
                    }
                }
            });
        }
        let line = match listening.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tlsdiag did not log its listening line within 30 s; log:\n{}",
                    log.lock().expect("log").join("\n")
                );
            }
        };
        // Text (`https=https://…/`) and JSON (`"https":"https://…/"`) logs alike.
        let addr = |field: &str, scheme: &str| -> Option<SocketAddr> {
            let (_, rest) = [
                format!("{field}={scheme}://"),
                format!("\"{field}\":\"{scheme}://"),
            ]
            .iter()
            .find_map(|key| line.split_once(key.as_str()))?;
            rest.split(['/', '"']).next()?.parse().ok()
        };
        let listener = |field: &str| {
            addr(field, field).unwrap_or_else(|| panic!("no {field} address in {line}"))
        };
        Self {
            https: listener("https"),
            http: listener("http"),
            metrics: addr("metrics", "http"),
            cert: certs.join("localhost.pem"),
            child,
            log,
            _dir: dir,
        }
    }

    /// Sends `signal` (a `kill` name such as "HUP" or "TERM") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits up to `limit` for a log line containing every one of `parts`.
    pub fn wait_for_log(&self, parts: &[&str], limit: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(line) = self
                .log
                .lock()
                .expect("log")
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return Some(line.clone());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit: its status and when.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Instant)> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some((status, Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Tlsdiag {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
