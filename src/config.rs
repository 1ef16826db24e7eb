//! Settings: command-line flags (each also readable from a `TLSDIAG_*`
//! environment variable) checked into a [`Config`] the server can trust.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::recent::StoreLimits;
pub use crate::server::Deadlines;

/// A diagnostic HTTPS endpoint: shows each client the TLS ClientHello it sent and
/// what its network path did to it.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Address of the HTTPS listener (the one that captures ClientHellos).
    #[arg(long, env = "TLSDIAG_HTTPS_ADDR", default_value = "127.0.0.1:8443")]
    pub https_addr: SocketAddr,

    /// Address of the plain-HTTP listener. It serves the same reports, so a client
    /// whose HTTPS is broken can still see why.
    #[arg(long, env = "TLSDIAG_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Optional third listener: plain HTTP with full-size packets (no MSS
    /// clamp), off by default. Where clients can reach it, check.sh runs its
    /// transfer ladders there when HTTPS fails outright, so the path is still
    /// tested with full-size packets; and support can point plain curl at it.
    #[arg(long, env = "TLSDIAG_PROBE_ADDR")]
    pub probe_addr: Option<SocketAddr>,

    /// MSS the plain-HTTP listener announces, so its pages and the results
    /// clients post cross paths that drop full-size packets. 1,220 keeps packets
    /// within 1,280 bytes, the smallest MTU IPv6 allows on any link. 0 disables.
    /// (The path test itself runs over the HTTPS port, whose packets are full size.)
    #[arg(long, env = "TLSDIAG_REPORT_MSS", default_value_t = 1220)]
    pub report_mss: u32,

    /// Next-hop MTU our own ICMP "fragmentation needed" / "packet too big"
    /// announces to a client whose ClientHello is stuck behind a black hole
    /// (at least 1,280: it can only make packets smaller). Sending needs
    /// CAP_NET_RAW; without it the test is skipped and reports say why.
    #[arg(long, env = "TLSDIAG_ICMP_MTU", default_value_t = 1280)]
    pub icmp_mtu: u32,

    /// Do not forget the path MTU our kernel learned toward a client when
    /// its test run starts. Forgetting (on by default; needs CAP_NET_ADMIN)
    /// is what lets a re-run announce the full MSS and find a black hole
    /// again; without it reports say why a run could not test full-size
    /// packets.
    #[arg(long, env = "TLSDIAG_NO_FORGET_PATH_MTU")]
    pub no_forget_path_mtu: bool,

    /// Do not record the packets of HTTPS connections. Recording (on by
    /// default; needs CAP_NET_RAW) keeps each connection's SYN, handshake and
    /// first packets after it, ICMP "fragmentation needed" included, for
    /// its own client to download as pcapng; without it reports say why
    /// there are no packets.
    #[arg(long, env = "TLSDIAG_NO_PACKET_CAPTURE")]
    pub no_packet_capture: bool,

    /// Memory for recorded packets, in MiB, all connections together (plus
    /// a 1 MiB kernel ring). An address gets an eighth of it, a connection
    /// 256 KiB and 128 packets; the oldest connections go first.
    #[arg(long, env = "TLSDIAG_PACKET_MEMORY_MB", default_value_t = 32)]
    pub packet_memory_mb: usize,

    /// PEM certificate chain (leaf first). Without it, a self-signed certificate
    /// for localhost is generated into --certs-dir on first start and reused after.
    /// Read again on SIGHUP and when either file changes; a pair that does not
    /// load keeps the current certificate in service (and is logged).
    #[arg(long, env = "TLSDIAG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "TLSDIAG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How often --tls-cert and --tls-key are checked for changes.
    #[arg(long, env = "TLSDIAG_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Duration,

    /// ACME directory URL (RFC 8555), e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`. With it, the
    /// certificate for --acme-domain comes from that CA and is renewed before
    /// it expires; until the first one is issued the generated certificate is
    /// served. Not with --tls-cert.
    #[arg(long, env = "TLSDIAG_ACME_DIRECTORY", value_name = "URL",
          requires = "acme_domain", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_directory: Option<String>,

    /// A name the ACME certificate covers (repeatable; comma-separated in the
    /// environment variable). It must resolve to this server.
    #[arg(long, env = "TLSDIAG_ACME_DOMAIN", value_name = "NAME", value_delimiter = ',',
          requires = "acme_directory", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_domain: Vec<String>,

    /// Contact for the ACME account, as mailto:address (repeatable).
    #[arg(long, env = "TLSDIAG_ACME_CONTACT", value_name = "MAILTO", value_delimiter = ',',
          requires = "acme_directory", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_contact: Vec<String>,

    /// PEM file of the root CA that signs the ACME server's own HTTPS
    /// certificate, for a private ACME server (pebble, step-ca). Default: the
    /// system's roots.
    #[arg(long, env = "TLSDIAG_ACME_CA_BUNDLE", value_name = "PEM",
          requires = "acme_directory", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_ca_bundle: Option<PathBuf>,

    /// Renew the ACME certificate when less than this is left of it.
    /// Default: a third of its lifetime (30 days of a 90-day certificate).
    #[arg(long, env = "TLSDIAG_ACME_RENEW_BEFORE", value_name = "DURATION", value_parser = humantime::parse_duration,
          requires = "acme_directory", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_renew_before: Option<Duration>,

    /// How the CA validates --acme-domain: http-01 (it fetches
    /// /.well-known/acme-challenge/ from the plain-HTTP listener, which must
    /// be reachable on port 80) or tls-alpn-01 (it connects to the HTTPS
    /// listener, which must be reachable on port 443, with ALPN acme-tls/1).
    #[arg(long, env = "TLSDIAG_ACME_CHALLENGE", value_enum, default_value = "http-01",
          requires = "acme_directory", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_challenge: AcmeChallenge,

    /// Where the generated development certificate lives.
    #[arg(long, env = "TLSDIAG_CERTS_DIR", default_value = "certs")]
    pub certs_dir: PathBuf,

    /// How long a client may take to send its whole ClientHello. Long enough for a
    /// retransmitted segment to arrive; a stall beyond it is reported as such.
    #[arg(long, env = "TLSDIAG_HELLO_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub hello_timeout: Duration,

    /// How long the rest of the handshake may take after the ClientHello.
    #[arg(long, env = "TLSDIAG_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,

    /// Connections held at once on each listener. When full, the oldest
    /// connection not serving a request (of the address holding the most)
    /// makes room; a listener's flood never reaches another listener.
    #[arg(long, env = "TLSDIAG_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Connections one client address may hold on each listener. Default: a
    /// quarter of --max-connections (1,024): hundreds of users behind one NAT
    /// fit, and no single address can fill a listener.
    #[arg(long, env = "TLSDIAG_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,

    /// How long a new connection (or, on HTTPS, one just past its handshake)
    /// may wait before sending the first byte of a request.
    #[arg(long, env = "TLSDIAG_FIRST_BYTE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub first_byte_timeout: Duration,

    /// How long an HTTP/1 request head may take to arrive, from its first byte.
    #[arg(long, env = "TLSDIAG_HEADER_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How long a request body may take to arrive in full, from its head
    /// (a total, not a per-read allowance).
    #[arg(long, env = "TLSDIAG_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// How long a response write may make no progress (a client that stops
    /// reading) before the connection is closed.
    #[arg(long, env = "TLSDIAG_WRITE_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_stall_timeout: Duration,

    /// Recent HTTPS attempts kept per client address (oldest dropped first).
    #[arg(long, env = "TLSDIAG_ATTEMPTS_PER_ADDRESS", default_value_t = 50)]
    pub attempts_per_address: usize,

    /// Recent HTTPS attempts kept in total, all addresses together.
    #[arg(long, env = "TLSDIAG_ATTEMPTS_TOTAL", default_value_t = 20_000)]
    pub attempts_total: usize,

    /// How long an attempt is kept for its client to look at.
    #[arg(long, env = "TLSDIAG_ATTEMPTS_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub attempts_ttl: Duration,

    /// Directory for saved reports (an SQLite database, created on first start).
    #[arg(long, env = "TLSDIAG_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// How long saved reports are kept.
    #[arg(long, env = "TLSDIAG_REPORT_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub report_retention: Duration,

    /// Total size of saved reports, in MiB; beyond it the oldest are deleted.
    #[arg(long, env = "TLSDIAG_REPORT_MAX_MB", default_value_t = 1024)]
    pub report_max_mb: u64,

    /// Reports one client address may save at once: an office behind one
    /// NAT address during an incident, every machine running the test. Past
    /// it a run still gets its verdict, unsaved.
    #[arg(long, env = "TLSDIAG_REPORT_BURST", default_value_t = 60)]
    pub report_burst: u32,

    /// After the burst, one more report per address this often.
    #[arg(long, env = "TLSDIAG_REPORT_EVERY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_every: Duration,

    /// How often expired reports are deleted.
    #[arg(long, env = "TLSDIAG_REPORT_PURGE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub report_purge_interval: Duration,

    /// Token for the operator view at /admin (HTTP Basic password, or Bearer).
    /// Without one, /admin does not exist.
    #[arg(long, env = "TLSDIAG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long a connection may sit between requests (HTTP/1 keep-alive,
    /// HTTP/2 with no stream open; PINGs do not count as activity).
    #[arg(long, env = "TLSDIAG_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    // ---- Production: several instances, logs, shutdown (docs/deployment.md) ----
    /// PostgreSQL for several instances (postgres://user:password@host/db, or
    /// a key=value connection string): saved reports go there instead of
    /// SQLite, and recent HTTPS attempts are shared, so a client whose HTTPS
    /// reached another instance still sees them here. Without it: SQLite in
    /// --data-dir, attempts in this process only.
    #[arg(long, env = "TLSDIAG_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// This instance's name, shown beside each attempt it saw (letters,
    /// digits, '.', '-', '_'; at most 64). Default: the host name.
    #[arg(long, env = "TLSDIAG_INSTANCE_NAME")]
    pub instance_name: Option<String>,

    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, env = "TLSDIAG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    /// for up to this long, then exit.
    #[arg(long, env = "TLSDIAG_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    // Metrics: --metrics-addr, --asn-db, --asn-db-reload-interval, --metrics-top-networks.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,

    // --- PROXY protocol (behind a TCP load balancer) ---
    /// Every connection on every listener starts with a PROXY protocol header
    /// (v1 or v2, detected) from a load balancer (HAProxy send-proxy[-v2], AWS
    /// NLB, ...): the client's address comes from it, and a connection without
    /// a valid header is closed. Reports then say that TCP facts (SYN, MSS,
    /// TCP_INFO, read timings) are the balancer's and withhold what rests on
    /// them. Off: a PROXY header is not trusted (it is just bytes).
    #[arg(long, env = "TLSDIAG_PROXY_PROTOCOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub proxy_protocol: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A database URL: printed in `Debug` without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<set>)")
    }
}

/// A name for this instance: the host name, or `tlsdiag` if there is none.
fn default_instance_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| valid_instance_name(h))
        .unwrap_or_else(|| "tlsdiag".to_owned())
}

/// Shown in reports and pages: plain on purpose.
pub fn valid_instance_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// These files, read again on SIGHUP and when they change.
    Files {
        cert: PathBuf,
        key: PathBuf,
        reload_every: Duration,
    },
    /// Generate (or reuse) a self-signed localhost certificate in this directory.
    Generated { dir: PathBuf },
    /// From an ACME CA; the generated certificate in `dir` until the first
    /// one is issued.
    Acme { dir: PathBuf, acme: AcmeSettings },
}

/// How the ACME CA validates our control of the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcmeChallenge {
    /// A token served over plain HTTP (RFC 8555 §8.3).
    #[value(name = "http-01")]
    Http01,
    /// A challenge certificate on the HTTPS listener (RFC 8737).
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
}

/// Checked ACME settings.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub directory: String,
    /// Lowercase, validated DNS names.
    pub domains: Vec<String>,
    pub contact: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
    /// `None`: a third of the certificate's lifetime.
    pub renew_before: Option<Duration>,
    pub challenge: AcmeChallenge,
    /// The data directory; ACME state lives under its `acme/`.
    pub data_dir: PathBuf,
}

/// Names one ACME certificate may cover (Let's Encrypt's limit too).
pub const MAX_ACME_DOMAINS: usize = 100;

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub https_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The optional full-size plain-HTTP probe listener.
    pub probe_addr: Option<SocketAddr>,
    /// MSS clamp for the plain-HTTP listener (`None`: the kernel's default).
    pub report_mss: Option<u32>,
    /// The MTU our ICMP test announces.
    pub icmp_mtu: u32,
    /// Forget the path MTU learned toward a client when its run starts.
    pub forget_path_mtu: bool,
    /// Record each HTTPS connection's packets (`None`: turned off).
    pub packet_capture: Option<crate::packets::Settings>,
    pub cert: CertSource,
    pub hello_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub deadlines: Deadlines,
    pub attempts: StoreLimits,
    pub reports: ReportSettings,
    /// Where saved reports and shared attempts go with several instances;
    /// `None`: SQLite in the data directory, attempts in memory only.
    pub database_url: Option<DatabaseUrl>,
    /// Tags the attempts this instance sees.
    pub instance_name: String,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The metrics listener and per-network accounting.
    pub metrics: crate::metrics::MetricsSettings,
    /// Connections arrive through a load balancer that sends a PROXY header.
    pub proxy_protocol: bool,
}

/// Where and how long reports are kept.
#[derive(Clone)]
pub struct ReportSettings {
    pub data_dir: PathBuf,
    pub retention: Duration,
    pub max_bytes: u64,
    pub purge_interval: Duration,
    /// Reports one address may save at once, then one per `every`.
    pub burst: u32,
    pub every: Duration,
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for ReportSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ReportSettings")
            .field("data_dir", &self.data_dir)
            .field("retention", &self.retention)
            .field("max_bytes", &self.max_bytes)
            .field("purge_interval", &self.purge_interval)
            .field("burst", &self.burst)
            .field("every", &self.every)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("--{flag} must be between {min:?} and {max:?}, got {got:?}")]
    OutOfRange {
        flag: &'static str,
        min: Duration,
        max: Duration,
        got: Duration,
    },
    #[error("--max-connections must be at least 1")]
    NoConnections,
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--report-mss must be 0 (off) or between 536 and 65495")]
    Mss,
    #[error("--icmp-mtu must be between 1280 (the IPv6 minimum) and 65535")]
    IcmpMtu,
    #[error("--admin-token must be at least 16 characters")]
    WeakToken,
    #[error("--instance-name must be 1 to 64 letters, digits, '.', '-' or '_'")]
    InstanceName,
    #[error("--acme-directory must be an https:// URL, got {0:?}")]
    AcmeDirectory(String),
    #[error("--acme-domain {0:?} is not a DNS name this server can be validated for (letters, digits, hyphens, dots; no wildcard, no IP address)")]
    AcmeDomain(String),
    #[error("--acme-domain: at most {MAX_ACME_DOMAINS} names")]
    AcmeTooManyDomains,
    #[error("--acme-contact must be a mailto: address, got {0:?}")]
    AcmeContact(String),
    #[error("--metrics-top-networks must be between 1 and {0}")]
    TopNetworks(usize),
}

impl Args {
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let check = |flag, got: Duration, min, max| {
            if got < min || got > max {
                Err(ConfigError::OutOfRange {
                    flag,
                    min,
                    max,
                    got,
                })
            } else {
                Ok(got)
            }
        };
        let secs = Duration::from_secs;
        Ok(Config {
            https_addr: self.https_addr,
            http_addr: self.http_addr,
            probe_addr: self.probe_addr,
            icmp_mtu: match self.icmp_mtu {
                mtu @ 1280..=65535 => mtu,
                _ => return Err(ConfigError::IcmpMtu),
            },
            forget_path_mtu: !self.no_forget_path_mtu,
            packet_capture: if self.no_packet_capture {
                None
            } else {
                let mb = at_least_one("packet-memory-mb", self.packet_memory_mb)?;
                Some(crate::packets::Settings::within(mb.saturating_mul(1 << 20)))
            },
            report_mss: match self.report_mss {
                0 => None,
                mss if (536..=65495).contains(&mss) => Some(mss),
                _ => return Err(ConfigError::Mss),
            },
            cert: match (self.tls_cert, self.tls_key, self.acme_directory) {
                (Some(cert), Some(key), _) => CertSource::Files {
                    cert,
                    key,
                    reload_every: check(
                        "tls-reload-interval",
                        self.tls_reload_interval,
                        Duration::from_millis(100),
                        secs(86_400),
                    )?,
                },
                (_, _, Some(directory)) => CertSource::Acme {
                    dir: self.certs_dir,
                    acme: AcmeSettings {
                        directory: acme_directory(directory)?,
                        domains: acme_domains(self.acme_domain)?,
                        contact: acme_contacts(self.acme_contact)?,
                        ca_bundle: self.acme_ca_bundle,
                        renew_before: self.acme_renew_before,
                        challenge: self.acme_challenge,
                        data_dir: self.data_dir.clone(),
                    },
                },
                _ => CertSource::Generated {
                    dir: self.certs_dir,
                },
            },
            hello_timeout: check(
                "hello-timeout",
                self.hello_timeout,
                Duration::from_millis(100),
                secs(120),
            )?,
            handshake_timeout: check(
                "handshake-timeout",
                self.handshake_timeout,
                Duration::from_millis(100),
                secs(120),
            )?,
            deadlines: Deadlines {
                first_byte: check(
                    "first-byte-timeout",
                    self.first_byte_timeout,
                    secs(1),
                    secs(3600),
                )?,
                head: check("header-timeout", self.header_timeout, secs(1), secs(3600))?,
                body: check("body-timeout", self.body_timeout, secs(1), secs(3600))?,
                write_stall: check(
                    "write-stall-timeout",
                    self.write_stall_timeout,
                    secs(1),
                    secs(3600),
                )?,
                idle: check("idle-timeout", self.idle_timeout, secs(1), secs(3600))?,
            },
            max_connections: match self.max_connections {
                0 => return Err(ConfigError::NoConnections),
                n => n,
            },
            max_connections_per_address: match self.max_connections_per_address {
                Some(0) => return Err(ConfigError::Zero("max-connections-per-address")),
                Some(n) => n.min(self.max_connections),
                None => (self.max_connections / 4).max(1),
            },
            attempts: StoreLimits {
                per_address: at_least_one("attempts-per-address", self.attempts_per_address)?,
                total: at_least_one("attempts-total", self.attempts_total)?,
                ttl: check(
                    "attempts-ttl",
                    self.attempts_ttl,
                    secs(1),
                    secs(7 * 24 * 3600),
                )?,
                ..StoreLimits::default()
            },
            reports: ReportSettings {
                data_dir: self.data_dir,
                retention: check(
                    "report-retention",
                    self.report_retention,
                    secs(1),
                    secs(10 * 365 * 86_400),
                )?,
                max_bytes: at_least_one("report-max-mb", self.report_max_mb as usize)? as u64
                    * 1024
                    * 1024,
                purge_interval: check(
                    "report-purge-interval",
                    self.report_purge_interval,
                    Duration::from_millis(100),
                    secs(86_400),
                )?,
                burst: at_least_one("report-burst", self.report_burst as usize)? as u32,
                every: check(
                    "report-every",
                    self.report_every,
                    Duration::from_millis(10),
                    secs(86_400),
                )?,
                admin_token: match self.admin_token {
                    Some(t) if t.len() < 16 => return Err(ConfigError::WeakToken),
                    other => other,
                },
            },
            database_url: self.database_url.map(DatabaseUrl),
            instance_name: match self.instance_name {
                None => default_instance_name(),
                Some(name) if valid_instance_name(&name) => name,
                Some(_) => return Err(ConfigError::InstanceName),
            },
            shutdown_grace: check(
                "shutdown-grace",
                self.shutdown_grace,
                Duration::ZERO,
                secs(3600),
            )?,
            metrics: self.metrics.into_settings()?,
            proxy_protocol: self.proxy_protocol,
        })
    }
}

fn acme_directory(url: String) -> Result<String, ConfigError> {
    if url.starts_with("https://") && url.len() > "https://".len() {
        Ok(url)
    } else {
        Err(ConfigError::AcmeDirectory(url))
    }
}

fn acme_domains(names: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if names.len() > MAX_ACME_DOMAINS {
        return Err(ConfigError::AcmeTooManyDomains);
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&lower) {
            return Err(ConfigError::AcmeDomain(name));
        }
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    Ok(out)
}

/// A host name a CA can validate by HTTP-01 or TLS-ALPN-01: LDH labels of
/// 1–63 characters, 253 in all, not all digits (an IP address).
fn is_dns_name(name: &str) -> bool {
    let labels_ok = name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    labels_ok && name.len() <= 253 && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn acme_contacts(contacts: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for c in &contacts {
        let address = c.strip_prefix("mailto:").unwrap_or("");
        if !address.contains('@')
            || address
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(ConfigError::AcmeContact(c.clone()));
        }
    }
    Ok(contacts)
}

fn at_least_one(flag: &'static str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(ConfigError::Zero(flag))
    } else {
        Ok(n)
    }
}

impl Config {
    /// Defaults for tests and embedding: ephemeral loopback ports, certificate in `dir`.
    pub fn for_tests(dir: PathBuf) -> Self {
        Self {
            https_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            probe_addr: None,
            report_mss: Some(1220),
            icmp_mtu: 1280,
            forget_path_mtu: true,
            // Off: a test that wants packets turns it on (a packet socket
            // per test server would see every other test's traffic).
            packet_capture: None,
            cert: CertSource::Generated { dir: dir.clone() },
            hello_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 256,
            deadlines: Deadlines {
                first_byte: Duration::from_secs(20),
                head: Duration::from_secs(20),
                body: Duration::from_secs(60),
                write_stall: Duration::from_secs(30),
                idle: Duration::from_secs(30),
            },
            attempts: StoreLimits::default(),
            reports: ReportSettings {
                data_dir: dir.with_file_name("data"),
                retention: Duration::from_secs(30 * 86_400),
                max_bytes: 1 << 30,
                purge_interval: Duration::from_secs(3600),
                burst: crate::web::REPORT_RATE.burst,
                every: crate::web::REPORT_RATE.every,
                admin_token: None,
            },
            database_url: None,
            instance_name: "test".to_owned(),
            shutdown_grace: Duration::from_secs(2),
            metrics: crate::metrics::MetricsSettings::default(),
            proxy_protocol: false,
        }
    }
}
