//! The real `tlsdiag` binary as a process of its own: started with flags,
//! its addresses read from its log, signalled and waited for by the test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Tlsdiag {
    pub child: Child,
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// The PEM certificate it serves.
    pub cert: std::path::PathBuf,
    /// Every line it has logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Tlsdiag {
    /// Starts the binary on ephemeral loopback ports with `args` added, and
    /// waits for its "listening" line.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
            .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--certs-dir")
            .arg(dir.path().join("certs"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tlsdiag starts");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = std::sync::mpsc::channel();
        let kept = log.clone();
        // Reads the log for the listening line, then keeps draining it so the
        // process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let after = |key: &str| {
                    line.split_once(key)
                        .map(|(_, rest)| rest.split(['/', '"']).next().unwrap_or("").to_owned())
                };
                if let (Some(https), Some(http)) = (after("https://"), after("http://")) {
                    let _ = found.send((https, http));
                }
                kept.lock().expect("log").push(line);
            }
        });
        let (https, http) = listening
            .recv_timeout(Duration::from_secs(30))
            .expect("tlsdiag did not log its listening addresses within 30 s");
        Self {
            child,
            https: https.parse().expect("https address"),
            http: http.parse().expect("http address"),
            cert: dir.path().join("certs").join("localhost.pem"),
            log,
            _dir: dir,
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
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

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }
}

impl Drop for Tlsdiag {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
