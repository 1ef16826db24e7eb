//! A four-namespace "black hole lab": client — r1 — r2 — server, joined by
//! veth pairs, with a 1,400-byte link between the two routers.
//!
//! ```text
//!  client            r1                    r2             server
//!  198.18.1.1 ── 198.18.1.2 | 198.18.2.1 ══ 198.18.2.2 | 198.18.3.1 ── 198.18.3.2
//!          mtu 1500            mtu 1400 (══)             mtu 1500
//! ```
//!
//! With `black_hole`, both routers drop the ICMP "fragmentation needed" they
//! would send, so a full-size (1,500-byte) packet with DF set vanishes at the
//! narrow link in either direction and nobody is told: the classic path-MTU
//! black hole. Without it (the control), path-MTU discovery works.
//!
//! Only addresses from the RFC 2544 benchmarking range (198.18.0.0/15) are
//! used, only inside the lab's own namespaces; the host's interfaces, routes
//! and firewall are never touched. Every namespace is deleted when the [`Lab`]
//! is dropped, also when the test panics. Needs root and `ip`, `iptables`,
//! `ethtool`, `sysctl`, `curl`, `timeout`, `bash`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The server's address, as the client reaches it through r1 and r2.
pub const SERVER_IP: &str = "198.18.3.2";
pub const HTTPS_PORT: u16 = 8443;
pub const HTTP_PORT: u16 = 8080;
pub const PROBE_PORT: u16 = 8081;

/// MTU of the r1–r2 link; every other link is 1,500.
pub const NARROW_MTU: u32 = 1400;

/// Tools the lab drives (beyond root).
const TOOLS: [&str; 7] = [
    "ip", "iptables", "ethtool", "sysctl", "curl", "timeout", "bash",
];

/// Prefix of every namespace a lab creates: `tdlab<pid><tag>-<role>`.
const PREFIX: &str = "tdlab";

/// Whether the lab can be built here: root, and every tool installed. Outside
/// CI a missing piece skips the test with a message; with CI=true it fails,
/// naming what is missing.
pub fn available() -> bool {
    if !is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the network-namespace lab needs root (id -u is not 0): run CI as root");
        }
        eprintln!("SKIPPED: the network-namespace lab needs root (id -u is not 0)");
        return false;
    }
    TOOLS.iter().all(|tool| super::require_tool(tool))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// What a command in the lab printed, and how it ended.
#[derive(Debug)]
pub struct Out {
    /// The exit code; `None` when killed by a signal. `timeout` exits 124.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// The four namespaces, and the tlsdiag server running in the last one.
/// Dropping it stops the server and deletes the namespaces.
pub struct Lab {
    pub client: String,
    pub r1: String,
    pub r2: String,
    pub server: String,
    /// Namespaces created so far (deleted on drop, newest first).
    created: Vec<String>,
    tlsdiag: Option<Child>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Builds the topology. `tag` (one lowercase letter) keeps the namespaces
    /// of tests running at the same time apart.
    pub fn build(tag: &str, black_hole: bool) -> Self {
        remove_stale_labs();
        let base = format!("{PREFIX}{}{tag}", std::process::id());
        let mut lab = Self {
            client: format!("{base}-client"),
            r1: format!("{base}-r1"),
            r2: format!("{base}-r2"),
            server: format!("{base}-server"),
            created: Vec::new(),
            tlsdiag: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for ns in [&lab.client, &lab.r1, &lab.r2, &lab.server].map(String::clone) {
            run_ok("ip", &["netns", "add", &ns]);
            lab.created.push(ns.clone());
            run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }

        // Interface names live inside the namespaces, so they need not be
        // unique on the host (and stay under 15 characters).
        let links = [
            // (ns, dev, address, peer ns, peer dev, peer address, mtu)
            (
                &lab.client,
                "to-r1",
                "198.18.1.1/30",
                &lab.r1,
                "to-client",
                "198.18.1.2/30",
                1500,
            ),
            (
                &lab.r1,
                "to-r2",
                "198.18.2.1/30",
                &lab.r2,
                "to-r1",
                "198.18.2.2/30",
                NARROW_MTU,
            ),
            (
                &lab.r2,
                "to-server",
                "198.18.3.1/30",
                &lab.server,
                "to-r2",
                "198.18.3.2/30",
                1500,
            ),
        ];
        for (ns, dev, addr, peer_ns, peer_dev, peer_addr, mtu) in links {
            run_ok(
                "ip",
                &[
                    "link",
                    "add",
                    dev,
                    "netns",
                    ns,
                    "mtu",
                    &mtu.to_string(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    peer_dev,
                    "netns",
                    peer_ns,
                    "mtu",
                    &mtu.to_string(),
                ],
            );
            for (ns, dev, addr) in [(ns, dev, addr), (peer_ns, peer_dev, peer_addr)] {
                run_ok("ip", &["-n", ns, "addr", "add", addr, "dev", dev]);
                // Real segments on the wire: no TSO/GSO super-packets that
                // would be sized after the MTU check, no GRO merging.
                run_ok(
                    "ip",
                    &[
                        "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off",
                        "gro", "off",
                    ],
                );
                run_ok("ip", &["-n", ns, "link", "set", dev, "up"]);
            }
        }

        run_ok(
            "ip",
            &[
                "-n",
                &lab.client,
                "route",
                "add",
                "default",
                "via",
                "198.18.1.2",
            ],
        );
        run_ok(
            "ip",
            &[
                "-n",
                &lab.server,
                "route",
                "add",
                "default",
                "via",
                "198.18.3.1",
            ],
        );
        run_ok(
            "ip",
            &[
                "-n",
                &lab.r1,
                "route",
                "add",
                "198.18.3.0/30",
                "via",
                "198.18.2.2",
            ],
        );
        run_ok(
            "ip",
            &[
                "-n",
                &lab.r2,
                "route",
                "add",
                "198.18.1.0/30",
                "via",
                "198.18.2.1",
            ],
        );

        for router in [&lab.r1, &lab.r2] {
            lab.sysctl(router, "net.ipv4.ip_forward=1");
        }
        // The end hosts must not heal the black hole by themselves (RFC 4821
        // probing shrinks the MSS after repeated timeouts). 0 is the default
        // in a new namespace; set it anyway so the lab does not depend on it.
        for host in [&lab.client, &lab.server] {
            lab.sysctl(host, "net.ipv4.tcp_mtu_probing=0");
        }
        if black_hole {
            for router in [&lab.r1, &lab.r2] {
                run_ok(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        router,
                        "iptables",
                        "-A",
                        "OUTPUT",
                        "-p",
                        "icmp",
                        "--icmp-type",
                        "fragmentation-needed",
                        "-j",
                        "DROP",
                    ],
                );
            }
        }
        lab
    }

    fn sysctl(&self, ns: &str, setting: &str) {
        run_ok("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", setting]);
    }

    /// Starts tlsdiag in the server namespace (HTTPS on 8443, plain HTTP on
    /// 8080, probes on 8081, hello timeout 3 s, handshake timeout 5 s) and
    /// waits until the client can reach `/healthz`.
    pub fn start_server(&mut self) {
        let log = File::create(self.log_path()).expect("server log");
        let certs = self.dir.path().join("certs");
        let https = format!("{SERVER_IP}:{HTTPS_PORT}");
        let http = format!("{SERVER_IP}:{HTTP_PORT}");
        let probe = format!("{SERVER_IP}:{PROBE_PORT}");
        let data = self.dir.path().join("data");
        // `ip netns exec` execs the program: the child is tlsdiag itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server, env!("CARGO_BIN_EXE_tlsdiag")])
            .args([
                "--https-addr",
                &https,
                "--http-addr",
                &http,
                "--probe-addr",
                &probe,
            ])
            .arg("--certs-dir")
            .arg(&certs)
            .arg("--data-dir")
            .arg(&data)
            .args(["--hello-timeout", "3s", "--handshake-timeout", "5s"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tlsdiag in the server namespace");
        self.tlsdiag = Some(child);

        let health = format!("http://{SERVER_IP}:{HTTP_PORT}/healthz");
        for _ in 0..100 {
            if let Some(status) = self
                .tlsdiag
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("tlsdiag exited ({status}):\n{}", self.server_log());
            }
            let out = self.client(&format!("curl -s --max-time 1 {health}"), 3);
            if out.ok() && out.stdout.trim() == "ok" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "tlsdiag never became ready at {health}:\n{}",
            self.server_log()
        );
    }

    /// Runs `script` with `sh -c` in namespace `ns`, killed after `secs`.
    pub fn sh(&self, ns: &str, script: &str, secs: u32) -> Out {
        let secs = secs.to_string();
        let output = Command::new("ip")
            .args([
                "netns", "exec", ns, "timeout", "-k", "2", &secs, "sh", "-c", script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        Out::from(output)
    }

    /// Runs `script` in the client namespace.
    pub fn client(&self, script: &str, secs: u32) -> Out {
        self.sh(&self.client, script, secs)
    }

    /// Opens a TCP connection from the client namespace to `port` on the
    /// server, writes the whole file in one `write()` (the kernel cuts it into
    /// MSS-sized segments), keeps the connection open `hold_secs`, then closes
    /// it (with a reset, as whatever the server answered is left unread).
    pub fn send_file_once(&self, port: u16, file: &Path, hold_secs: u32) -> Out {
        let script =
            format!("exec 3<>/dev/tcp/{SERVER_IP}/{port} && cat \"$0\" >&3 && sleep {hold_secs}");
        let output = Command::new("ip")
            .args(["netns", "exec", &self.client, "timeout", "-k", "2"])
            .arg((hold_secs + 10).to_string())
            .args(["bash", "-c", &script])
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec bash");
        Out::from(output)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tlsdiag.log")
    }

    /// What tlsdiag has logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.tlsdiag.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- tlsdiag log ({}) ---\n{}",
                self.server,
                self.server_log()
            );
        }
        for ns in self.created.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs a setup command; panics with its output if it fails.
fn run_ok(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} {}: {e}", args.join(" ")));
    if !output.status.success() {
        panic!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
}

/// Deletes namespaces left by an earlier lab run that was killed before it
/// could clean up: ours by prefix, and only when the process that made them
/// (the pid in the name) no longer exists.
fn remove_stale_labs() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}
