//! A four-namespace network lab: client — r1 — r2 — server, joined by veth
//! pairs, with a narrow link between the two routers and the path faults of
//! real incidents switched on one by one ([`LabSpec`]).
//!
//! ```text
//!  client          r1                  r2             server
//!  1.1 ──────── 1.2 | 2.1 ═══════════ 2.2 | 3.1 ──────── 3.2
//!     mtu 1500          spec.mtu (═══)         mtu 1500
//!
//!  <net>.<host> is 198.18.<net>.<host>/30, or 2001:2:0:<net>::<host>/64 in an
//!  IPv6 lab: the server is 198.18.3.2 or 2001:2:0:3::2.
//! ```
//!
//! A packet too big for the narrow link is refused by the router in front of
//! it, which answers with ICMP "fragmentation needed" (IPv6: "packet too
//! big"): r1 for packets toward the server, r2 for packets toward the client.
//! Dropping that ICMP on the router makes the direction a path-MTU black hole:
//! full-size packets with DF set vanish and their sender is never told.
//!
//! A lab is IPv4-only or IPv6-only. Only addresses from the benchmarking
//! ranges are used (198.18.0.0/15, RFC 2544; 2001:2::/48, RFC 5180), only
//! inside the lab's own namespaces; the host's interfaces, routes and firewall
//! are never touched. Every namespace is deleted when the [`Lab`] is dropped,
//! also when the test panics. Needs root and `ip`, `iptables`, `ip6tables`,
//! `ethtool`, `sysctl`, `curl`, `timeout`, `bash`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The server's address, as the client reaches it through r1 and r2.
pub const SERVER_IP: &str = "198.18.3.2";
/// The client's address, as the server sees it.
pub const CLIENT_IP: &str = "198.18.1.1";
/// The server's address in an IPv6 lab.
pub const SERVER_IP6: &str = "2001:2:0:3::2";
/// The client's address in an IPv6 lab.
pub const CLIENT_IP6: &str = "2001:2:0:1::1";
pub const HTTPS_PORT: u16 = 8443;
pub const HTTP_PORT: u16 = 8080;
/// A third server port, which an egress policy of only [`HTTPS_PORT`] and
/// [`HTTP_PORT`] blocks.
pub const BLOCKED_PORT: u16 = 8081;

/// The usual MTU of the r1–r2 link; every other link is 1,500.
pub const NARROW_MTU: u32 = 1400;

/// Tools the lab drives (beyond root).
const TOOLS: [&str; 8] = [
    "ip",
    "iptables",
    "ip6tables",
    "ethtool",
    "sysctl",
    "curl",
    "timeout",
    "bash",
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

/// What a lab's path does to packets. [`LabSpec::control`] is a healthy path
/// (path-MTU discovery works); each field adds one fault, and the usual
/// combinations have constructors. Others by struct update:
/// `LabSpec { ipv6: true, ..LabSpec::black_hole() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// MTU of the r1–r2 link (1400, 1280...; IPv6 needs at least 1280).
    pub mtu: u32,
    /// r1 drops the "fragmentation needed" / "packet too big" it would send
    /// back to the client: packets from the client larger than `mtu` vanish
    /// (a client→server black hole).
    pub drop_icmp_toward_client: bool,
    /// r2 drops the ICMP it would send back to the server: a server→client
    /// black hole.
    pub drop_icmp_toward_server: bool,
    /// r1, the client's edge, also drops every "fragmentation needed" /
    /// "packet too big" it forwards toward the client, whoever sent it: the
    /// seed incident's firewall.
    pub drop_forwarded_icmp_toward_client: bool,
    /// IPv6-only lab (2001:2::/48 addresses, routes, server URL); otherwise
    /// IPv4-only, with IPv6 disabled in every namespace.
    pub ipv6: bool,
    /// Whether the client sets DF (IPv4 path-MTU discovery, Linux's default).
    /// When false (`net.ipv4.ip_no_pmtu_disc=1`) r1 fragments the client's
    /// large packets instead of refusing them. IPv4 only: IPv6 routers never
    /// fragment.
    pub client_sets_df: bool,
    /// r2 drops the IP fragments it would forward, like a "drop all
    /// fragments" firewall: a fragmented packet never reaches the server.
    /// These are the fragments r1 (or the client) made on the way to the
    /// server; r2 fragments its own output after its filter.
    pub drop_fragments: bool,
    /// The client's egress policy: only new TCP connections to these server
    /// ports may leave (like an enterprise firewall allowing 443 and 80);
    /// anything else the client sends to the server is dropped, so a
    /// connection to another port times out rather than being refused.
    pub egress_only: Option<Vec<u16>>,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self::control()
    }
}

impl LabSpec {
    /// A healthy path across a [`NARROW_MTU`] link: every router's ICMP gets
    /// through, so both ends learn the path MTU.
    pub fn control() -> Self {
        Self {
            mtu: NARROW_MTU,
            drop_icmp_toward_client: false,
            drop_icmp_toward_server: false,
            drop_forwarded_icmp_toward_client: false,
            ipv6: false,
            client_sets_df: true,
            drop_fragments: false,
            egress_only: None,
        }
    }

    /// A black hole in both directions: full-size packets vanish either way.
    pub fn black_hole() -> Self {
        Self {
            drop_icmp_toward_client: true,
            drop_icmp_toward_server: true,
            ..Self::control()
        }
    }

    /// Only the client's large packets vanish (a large ClientHello, uploads).
    pub fn client_to_server_black_hole() -> Self {
        Self {
            drop_icmp_toward_client: true,
            ..Self::control()
        }
    }

    /// Only the server's large packets vanish (certificates, downloads).
    pub fn server_to_client_black_hole() -> Self {
        Self {
            drop_icmp_toward_server: true,
            ..Self::control()
        }
    }

    /// The same path over IPv6.
    pub fn v6(self) -> Self {
        Self { ipv6: true, ..self }
    }
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

/// The four namespaces, and what runs in them (tlsdiag in the server
/// namespace, helpers from [`Lab::spawn`]). Dropping it kills those processes
/// and deletes the namespaces.
#[derive(Debug)]
pub struct Lab {
    pub client: String,
    pub r1: String,
    pub r2: String,
    pub server: String,
    /// What the lab was built as.
    pub spec: LabSpec,
    /// Namespaces created so far (deleted on drop, newest first).
    created: Vec<String>,
    tlsdiag: Option<Child>,
    /// Processes from [`Lab::spawn`] (a lock, so that spawning needs only
    /// `&self` and can name one of the lab's own namespaces).
    helpers: Mutex<Vec<Child>>,
    dir: tempfile::TempDir,
}

/// Address of host `host` on lab network `net` (1: client–r1, 2: r1–r2,
/// 3: r2–server): `198.18.<net>.<host>` or `2001:2:0:<net>::<host>`.
fn addr(ipv6: bool, net: u8, host: u8) -> String {
    if ipv6 {
        format!("2001:2:0:{net}::{host}")
    } else {
        format!("198.18.{net}.{host}")
    }
}

fn subnet(ipv6: bool, net: u8) -> String {
    if ipv6 {
        format!("2001:2:0:{net}::/64")
    } else {
        format!("198.18.{net}.0/30")
    }
}

impl Lab {
    /// Builds the topology `spec` describes. `tag` (a few lowercase letters,
    /// not starting with a digit) keeps the namespaces of tests running at the
    /// same time apart.
    pub fn build(tag: &str, spec: &LabSpec) -> Self {
        assert!(
            spec.client_sets_df || !spec.ipv6,
            "client_sets_df=false is IPv4-only: IPv6 routers never fragment"
        );
        assert!(
            !tag.starts_with(|c: char| c.is_ascii_digit()),
            "tag {tag:?} starts with a digit: stale-lab cleanup reads the pid before it"
        );
        remove_stale_labs();
        let base = format!("{PREFIX}{}{tag}", std::process::id());
        let mut lab = Self {
            client: format!("{base}-client"),
            r1: format!("{base}-r1"),
            r2: format!("{base}-r2"),
            server: format!("{base}-server"),
            spec: spec.clone(),
            created: Vec::new(),
            tlsdiag: None,
            helpers: Mutex::default(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let v6 = spec.ipv6;
        for ns in lab.namespaces() {
            run_ok("ip", &["netns", "add", &ns]);
            lab.created.push(ns.clone());
            run_ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            // Set before the links are made, which take the namespace's
            // defaults. Nothing may change on an interface once the lab is
            // built: a late address event (an IPv6 link-local address
            // finishing duplicate address detection a second or two after
            // the link came up) makes Chromium abort every request in flight
            // with ERR_NETWORK_CHANGED. So an IPv4 lab has no IPv6 at all,
            // and an IPv6 lab's addresses skip detection and are final at once.
            let setting = if v6 { "accept_dad=0" } else { "disable_ipv6=1" };
            for scope in ["all", "default"] {
                lab.sysctl(&ns, &format!("net.ipv6.conf.{scope}.{setting}"));
            }
        }

        // Interface names live inside the namespaces, so they need not be
        // unique on the host (and stay under 15 characters). On each link the
        // first namespace is host 1, the peer host 2.
        let links = [
            // (ns, dev, peer ns, peer dev, network, mtu)
            (&lab.client, "to-r1", &lab.r1, "to-client", 1, 1500),
            (&lab.r1, "to-r2", &lab.r2, "to-r1", 2, spec.mtu),
            (&lab.r2, "to-server", &lab.server, "to-r2", 3, 1500),
        ];
        let plen = if v6 { "64" } else { "30" };
        for (ns, dev, peer_ns, peer_dev, net, mtu) in links {
            let mtu = mtu.to_string();
            run_ok(
                "ip",
                &[
                    "link", "add", dev, "netns", ns, "mtu", &mtu, "type", "veth", "peer", "name",
                    peer_dev, "netns", peer_ns, "mtu", &mtu,
                ],
            );
            for (ns, dev, host) in [(ns, dev, 1), (peer_ns, peer_dev, 2)] {
                let address = format!("{}/{plen}", addr(v6, net, host));
                let mut args = vec!["-n", ns, "addr", "add", &address, "dev", dev];
                if v6 {
                    args.push("nodad");
                }
                run_ok("ip", &args);
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

        let family = if v6 { "-6" } else { "-4" };
        let routes = [
            (&lab.client, "default".to_owned(), addr(v6, 1, 2)),
            (&lab.server, "default".to_owned(), addr(v6, 3, 1)),
            (&lab.r1, subnet(v6, 3), addr(v6, 2, 2)),
            (&lab.r2, subnet(v6, 1), addr(v6, 2, 1)),
        ];
        for (ns, to, via) in routes {
            run_ok("ip", &[family, "-n", ns, "route", "add", &to, "via", &via]);
        }

        for router in [&lab.r1, &lab.r2] {
            lab.sysctl(
                router,
                if v6 {
                    "net.ipv6.conf.all.forwarding=1"
                } else {
                    "net.ipv4.ip_forward=1"
                },
            );
        }
        // The end hosts must not heal a black hole by themselves (RFC 4821
        // probing shrinks the MSS after repeated timeouts; the setting covers
        // TCP over IPv6 too). 0 is the default in a new namespace; set it
        // anyway so the lab does not depend on it.
        for host in [&lab.client, &lab.server] {
            lab.sysctl(host, "net.ipv4.tcp_mtu_probing=0");
        }
        if !spec.client_sets_df {
            lab.sysctl(&lab.client, "net.ipv4.ip_no_pmtu_disc=1");
        }

        lab.drop_icmp(spec);
        if spec.drop_fragments {
            // iptables' -f matches second and later fragments: the first one
            // passes, but the packet can never be reassembled. (No conntrack
            // in r2, so nothing reassembles fragments before this rule.)
            // ip6tables' frag match: every packet with a Fragment header.
            let fragments = if v6 {
                ["FORWARD", "-m", "frag"].as_slice()
            } else {
                &["FORWARD", "-f"]
            };
            lab.append(&lab.r2, fragments, "DROP");
        }
        if let Some(ports) = &spec.egress_only {
            // Scoped to the server's address, so loopback, neighbour
            // discovery and the routers stay reachable; replies and the ICMP
            // errors about allowed connections pass as ESTABLISHED/RELATED.
            // The client's own SYN is dropped before it leaves: connect()
            // keeps retrying until it times out, as behind a firewall.
            let server = lab.server_ip();
            let client = &lab.client;
            let established = [
                "OUTPUT",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
            ];
            lab.append(client, &established, "ACCEPT");
            for port in ports {
                let port = port.to_string();
                let rule = ["OUTPUT", "-d", server, "-p", "tcp", "--dport", &port];
                lab.append(client, &rule, "ACCEPT");
            }
            lab.append(client, &["OUTPUT", "-d", server], "DROP");
        }
        lab.wait_until_settled();
        lab
    }

    /// Waits until every link is up at both ends (and, in an IPv6 lab, has
    /// its link-local address). A veth's carrier comes up asynchronously, up
    /// to a second after `ip link set up` (the kernel's link watcher batches
    /// such events); until then whatever the interface sends is dropped (a
    /// lost neighbour solicitation costs the first connection a second) and
    /// the late link and address events would reach the programs under test
    /// (Chromium aborts its requests when the network changes).
    fn wait_until_settled(&self) {
        let settled = |ns: &str| {
            let links = self.sh(ns, "ip -o link show", 5).stdout;
            let links: Vec<&str> = links.lines().filter(|l| !l.contains(" lo:")).collect();
            let up = links
                .iter()
                .all(|l| l.contains("LOWER_UP") && l.contains("state UP"));
            up && (!self.spec.ipv6 || {
                let local = self.sh(ns, "ip -o -6 addr show scope link", 5).stdout;
                local.lines().count() == links.len() && !local.contains("tentative")
            })
        };
        for ns in self.namespaces() {
            let mut tries = 0;
            while !settled(&ns) {
                tries += 1;
                assert!(tries < 100, "the links in {ns} never came up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Appends the ICMP drops `spec` asks for (its
    /// `drop_icmp_toward_client`, `drop_icmp_toward_server` and
    /// `drop_forwarded_icmp_toward_client`).
    fn drop_icmp(&self, spec: &LabSpec) {
        // The ICMP a router generates itself passes its OUTPUT chain (FORWARD
        // sees only transit traffic). Each router only ever sends it one way:
        // r1 for packets entering the narrow link from the client, r2 for
        // packets entering it from the server.
        let too_big: &[&str] = if self.spec.ipv6 {
            &["-p", "icmpv6", "--icmpv6-type", "packet-too-big"]
        } else {
            &["-p", "icmp", "--icmp-type", "fragmentation-needed"]
        };
        if spec.drop_icmp_toward_client {
            self.append(
                &self.r1,
                &[&["OUTPUT", "-o", "to-client"], too_big].concat(),
                "DROP",
            );
        }
        if spec.drop_icmp_toward_server {
            self.append(
                &self.r2,
                &[&["OUTPUT", "-o", "to-server"], too_big].concat(),
                "DROP",
            );
        }
        if spec.drop_forwarded_icmp_toward_client {
            self.append(
                &self.r1,
                &[&["FORWARD", "-o", "to-client"], too_big].concat(),
                "DROP",
            );
        }
    }

    /// Switches on, in the running lab, the ICMP drops of `faults` it was
    /// built without (the three `drop_*icmp*` fields; the rest of `faults`
    /// must match the lab), then makes the client and the server forget every
    /// path MTU they learned, so their next connections meet the new path as
    /// a fresh machine would. The same client and server on a path that
    /// breaks between two runs: the office network after a firewall change.
    pub fn add_icmp_faults(&mut self, faults: &LabSpec) {
        let unchanged = LabSpec {
            drop_icmp_toward_client: self.spec.drop_icmp_toward_client,
            drop_icmp_toward_server: self.spec.drop_icmp_toward_server,
            drop_forwarded_icmp_toward_client: self.spec.drop_forwarded_icmp_toward_client,
            ..faults.clone()
        };
        assert_eq!(
            unchanged, self.spec,
            "only the ICMP drops can change in a running lab"
        );
        let added = LabSpec {
            drop_icmp_toward_client: faults.drop_icmp_toward_client
                && !self.spec.drop_icmp_toward_client,
            drop_icmp_toward_server: faults.drop_icmp_toward_server
                && !self.spec.drop_icmp_toward_server,
            drop_forwarded_icmp_toward_client: faults.drop_forwarded_icmp_toward_client
                && !self.spec.drop_forwarded_icmp_toward_client,
            ..self.spec.clone()
        };
        self.drop_icmp(&added);
        self.spec.drop_icmp_toward_client |= added.drop_icmp_toward_client;
        self.spec.drop_icmp_toward_server |= added.drop_icmp_toward_server;
        self.spec.drop_forwarded_icmp_toward_client |= added.drop_forwarded_icmp_toward_client;
        // Learned path MTUs live in the routing table's exceptions until they
        // expire (10 minutes); flushing the cache drops them at once.
        let family = if self.spec.ipv6 { "-6" } else { "-4" };
        for ns in [&self.client, &self.server] {
            run_ok("ip", &[family, "-n", ns, "route", "flush", "cache"]);
        }
    }

    fn namespaces(&self) -> [String; 4] {
        [&self.client, &self.r1, &self.r2, &self.server].map(String::clone)
    }

    fn sysctl(&self, ns: &str, setting: &str) {
        run_ok("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", setting]);
    }

    /// Appends a rule to `chain_and_match[0]`, with the lab family's
    /// iptables: `-A chain match... -j verdict`.
    fn append(&self, ns: &str, chain_and_match: &[&str], verdict: &str) {
        let mut args = vec!["-w", "-A"];
        args.extend(chain_and_match);
        args.extend(["-j", verdict]);
        self.iptables(ns, &args);
    }

    fn iptables(&self, ns: &str, args: &[&str]) {
        let program = if self.spec.ipv6 {
            "ip6tables"
        } else {
            "iptables"
        };
        let mut all = vec!["netns", "exec", ns, program];
        all.extend(args);
        run_ok("ip", &all);
    }

    /// The server's address, bare (for `ping`, `ip route get`, bash's
    /// `/dev/tcp`).
    pub fn server_ip(&self) -> &'static str {
        if self.spec.ipv6 {
            SERVER_IP6
        } else {
            SERVER_IP
        }
    }

    /// The client's address, bare.
    pub fn client_ip(&self) -> &'static str {
        if self.spec.ipv6 {
            CLIENT_IP6
        } else {
            CLIENT_IP
        }
    }

    /// The server's address as a URL host: `198.18.3.2` or `[2001:2:0:3::2]`.
    /// (curl needs `-g` for the bracketed form.)
    pub fn server_host(&self) -> String {
        if self.spec.ipv6 {
            format!("[{SERVER_IP6}]")
        } else {
            SERVER_IP.to_owned()
        }
    }

    /// Starts tlsdiag in the server namespace (HTTPS on 8443, plain HTTP on
    /// 8080, hello timeout 3 s, handshake timeout 5 s) and waits until the
    /// client can reach `/healthz`.
    pub fn start_server(&mut self) {
        self.start_server_with(&[]);
    }

    /// [`Lab::start_server`], with more command-line arguments for tlsdiag
    /// (`--tls-cert`, `--tls-key`...).
    pub fn start_server_with(&mut self, extra: &[&str]) {
        self.start_server_under(&[], extra);
    }

    /// [`Lab::start_server_with`], tlsdiag run by `wrapper` (a program that
    /// execs the rest of its command line, such as `setpriv --bounding-set
    /// -net_raw`, so the child is still tlsdiag itself).
    pub fn start_server_under(&mut self, wrapper: &[&str], extra: &[&str]) {
        let log = File::create(self.log_path()).expect("server log");
        let host = self.server_host();
        let https = format!("{host}:{HTTPS_PORT}");
        let http = format!("{host}:{HTTP_PORT}");
        // `ip netns exec` execs the program: the child is tlsdiag itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server])
            .args(wrapper)
            .arg(env!("CARGO_BIN_EXE_tlsdiag"))
            .args(["--https-addr", &https, "--http-addr", &http])
            .arg("--certs-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--hello-timeout", "3s", "--handshake-timeout", "5s"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tlsdiag in the server namespace");
        self.tlsdiag = Some(child);

        let health = format!("http://{host}:{HTTP_PORT}/healthz");
        for _ in 0..100 {
            if let Some(status) = self
                .tlsdiag
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("tlsdiag exited ({status}):\n{}", self.server_log());
            }
            let out = self.client(&format!("curl -s -g --max-time 1 {health}"), 3);
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

    /// Starts `program` with `args` in namespace `ns`, in the background,
    /// output discarded; it is killed when the lab is dropped. (`ip netns
    /// exec` execs the program, so pass the server itself, not a shell that
    /// would outlive the kill.)
    pub fn spawn(&self, ns: &str, program: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} in {ns}: {e}"));
        self.helpers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
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

    /// openssl s_client from the client namespace to the server's HTTPS
    /// port, its ClientHello padded by ALPN entries to about 1,900 bytes
    /// (more than one full-size segment, less than two): the ClientHello
    /// message's length as openssl printed it (4-byte header included; one
    /// 5-byte record header more on the wire), and whether the handshake
    /// completed within 6 s.
    pub fn openssl_padded_hello(&self, v6: bool) -> (usize, bool) {
        let pad: Vec<String> = (0..7)
            .map(|i| ((b'a' + i) as char).to_string().repeat(200))
            .collect();
        let connect = if v6 {
            format!("[{SERVER_IP6}]:{HTTPS_PORT}")
        } else {
            format!("{SERVER_IP}:{HTTPS_PORT}")
        };
        let out = self.client(
            &format!(
                "timeout 6 openssl s_client -connect {connect} -noservername -msg -alpn {},http/1.1 </dev/null 2>&1",
                pad.join(",")
            ),
            10,
        );
        // ">>> TLS 1.3, Handshake [length 06b2], ClientHello".
        let message = out
            .stdout
            .lines()
            .find_map(|l| {
                let hex = l.split("Handshake [length ").nth(1)?.split(']').next()?;
                l.contains("ClientHello")
                    .then(|| usize::from_str_radix(hex, 16).ok())?
            })
            .unwrap_or_else(|| panic!("openssl printed no ClientHello: {out:?}"));
        (message, out.stdout.contains("Cipher is TLS"))
    }

    /// The path MTU namespace `ns` has cached for `to` (learned from an ICMP
    /// "fragmentation needed" / "packet too big"), per `ip route get`.
    pub fn path_mtu(&self, ns: &str, to: &str) -> Option<u32> {
        let out = self.sh(ns, &format!("ip route get {to}"), 10);
        assert!(out.ok(), "ip route get {to} in {ns}: {out:?}");
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "mtu")
            .map(|w| w[1].parse().expect("mtu value"))
    }

    /// Packets the DROP rules of `chain` in namespace `ns` have dropped
    /// (summed; with the lab family's iptables).
    pub fn dropped(&self, ns: &str, chain: &str) -> u64 {
        let program = if self.spec.ipv6 {
            "ip6tables"
        } else {
            "iptables"
        };
        let out = self.sh(ns, &format!("{program} -w -L {chain} -v -n -x"), 10);
        assert!(out.ok(), "{program} -L {chain} in {ns}: {out:?}");
        out.stdout
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("DROP"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Opens a TCP connection from the client namespace to `port` on the
    /// server, writes the whole file in one `write()` (the kernel cuts it into
    /// MSS-sized segments), keeps the connection open `hold_secs`, then closes
    /// it (with a reset, as whatever the server answered is left unread).
    pub fn send_file_once(&self, port: u16, file: &Path, hold_secs: u32) -> Out {
        let script = format!(
            "exec 3<>/dev/tcp/{}/{port} && cat \"$0\" >&3 && sleep {hold_secs}",
            self.server_ip()
        );
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
        let helpers = std::mem::take(self.helpers.get_mut().unwrap_or_else(|e| e.into_inner()));
        for mut child in self.tlsdiag.take().into_iter().chain(helpers) {
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

/// The DER bytes [`big_chain`]'s server chain (leaf and two intermediates)
/// has at least; about 4,000 in practice.
pub const BIG_CHAIN_MIN_DER: usize = 3000;

/// A certificate chain too large for one packet, for `start_server_with(&["--tls-cert",
/// chain, "--tls-key", key])`: root CA → intermediate CA → second intermediate
/// → leaf, every key RSA-4096, so each certificate is about 1,350 bytes of DER
/// (a 512-byte public key and a 512-byte signature). The server sends leaf and
/// both intermediates: about 4,000 bytes, at least [`BIG_CHAIN_MIN_DER`],
/// three full-size packets of Certificate message. The leaf is for `IP:san_ip`
/// and `DNS:localhost`, valid 30 days.
///
/// Returns (chain PEM, leaf first; leaf key PEM; root PEM, to trust), all in
/// `dir`. Needs the `openssl` CLI (3.0 or newer, for `req -CA`).
pub fn big_chain(dir: &Path, san_ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let names = ["root", "ca1", "ca2", "leaf"];
    let file = |name: &str, ext: &str| dir.join(format!("{name}.{ext}"));
    // Each RSA-4096 key takes a second or more: make them all at once.
    let keygens: Vec<(String, Child)> = names
        .iter()
        .map(|name| {
            let child = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:4096",
                ])
                .arg("-out")
                .arg(file(name, "key"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("openssl genpkey");
            (name.to_string(), child)
        })
        .collect();
    for (name, child) in keygens {
        let output = child.wait_with_output().expect("openssl genpkey");
        assert!(
            output.status.success(),
            "openssl genpkey for {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let ca = [
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    let san = format!("subjectAltName=IP:{san_ip},DNS:localhost");
    let leaf = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        &san,
    ];
    // (name, subject, issuer, extensions)
    let certs: [(&str, &str, Option<&str>, &[&str]); 4] = [
        ("root", "/CN=tlsdiag lab root CA", None, &ca),
        (
            "ca1",
            "/CN=tlsdiag lab intermediate CA 1",
            Some("root"),
            &ca,
        ),
        ("ca2", "/CN=tlsdiag lab intermediate CA 2", Some("ca1"), &ca),
        ("leaf", "/CN=tlsdiag lab server", Some("ca2"), &leaf),
    ];
    for (name, subject, issuer, extensions) in certs {
        let mut req = Command::new("openssl");
        req.args(["req", "-x509", "-new", "-days", "30", "-subj", subject])
            .arg("-key")
            .arg(file(name, "key"))
            .arg("-out")
            .arg(file(name, "pem"));
        if let Some(issuer) = issuer {
            req.arg("-CA")
                .arg(file(issuer, "pem"))
                .arg("-CAkey")
                .arg(file(issuer, "key"));
        }
        for extension in extensions {
            req.args(["-addext", extension]);
        }
        let output = req.stdin(Stdio::null()).output().expect("openssl req");
        assert!(
            output.status.success(),
            "openssl req for {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let chain = dir.join("chain.pem");
    let pem: String = ["leaf", "ca2", "ca1"]
        .iter()
        .map(|name| std::fs::read_to_string(file(name, "pem")).expect("certificate"))
        .collect();
    std::fs::write(&chain, pem).expect("write chain");
    (chain, file("leaf", "key"), file("root", "pem"))
}

/// Where a lab test leaves a screenshot for people to look at
/// (`target/lab/NAME.png`).
pub fn screenshot_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("lab");
    std::fs::create_dir_all(&dir).expect("target/lab");
    dir.join(format!("{name}.png"))
}

/// A lab case's panic, as text: cases run on threads of their own, and
/// every failure is reported together.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
