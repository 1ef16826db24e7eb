//! The listeners: binds the HTTPS and plain-HTTP ports, accepts connections
//! under each listener's own limits, and gives each its own task. A
//! connection's failure is logged inside its task and goes no further.
//!
//! - `admission`: per-listener and per-address limits; who makes room.
//! - `activity`: what a connection is doing; its deadlines.
//! - `socket`: the accepted stream and its one descriptor.
//! - `tls`: capture → handshake → attempt record → HTTP, for the HTTPS port.
//! - `plain`: the plain-HTTP port.
//! - `http`: serves HTTP/1.1 and HTTP/2 on an established connection.
//! - `database`: with `--database-url`, opening PostgreSQL and its background work.
//! - `metrics_http`: the optional Prometheus listener (`--metrics-addr`).
//!
//! Shutdown (`Server::run`): the listeners close first, then each HTTP
//! connection finishes its request in flight and closes, for up to
//! `--shutdown-grace`.

mod activity;
mod admission;
mod database;
mod http;
mod metrics_http;
mod plain;
mod rescue;
mod socket;
mod tls;

pub use activity::Deadlines;
pub use admission::{Admission, Limits};

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::certs::{self, reload::Hangup, Served, ServedCert};
use crate::config::{CertSource, Config};
use crate::proxy::{Peer, ProxyError, Via};
use crate::reports::{ReportStore, SqliteReportStore};
use crate::web::{self, AppState, TcpFacts};
use activity::Activity;
use socket::Socket;
use std::os::fd::AsFd;

/// What every connection task needs.
pub(crate) struct Shared {
    pub config: Config,
    pub acceptor: TlsAcceptor,
    pub app: web::App,
    pub state: AppState,
    pub admission: Listeners,
    next_id: AtomicU64,
    /// Turns true when the server is shutting down: each HTTP connection
    /// finishes the request in flight, then closes (see `shutdown`).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Each listener's admission: a flood on one never takes another's places.
#[derive(Debug)]
pub struct Listeners {
    pub https: Arc<Admission>,
    pub http: Arc<Admission>,
    pub probe: Arc<Admission>,
}

impl Listeners {
    fn new(config: &Config) -> Self {
        let limits = Limits {
            total: config.max_connections,
            per_address: config.max_connections_per_address,
        };
        Self {
            https: Admission::new("https", limits),
            http: Admission::new("http", limits),
            probe: Admission::new("probe", limits),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // TlsAcceptor has no Debug; the config is what matters in a dump.
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A bound, not yet running, server.
#[derive(Debug)]
pub struct Server {
    https: TcpListener,
    http: TcpListener,
    probe: Option<TcpListener>,
    shared: Arc<Shared>,
    cert_path: PathBuf,
    /// Tells connections the server is shutting down.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The shared database's background work, started by `run`.
    database: Option<database::Background>,
    served: Arc<Served>,
    /// The version of --tls-cert/--tls-key served first (for the watcher).
    files_version: Option<certs::reload::Version>,
    hangup: Hangup,
    metrics: metrics_http::Prepared,
}

impl Server {
    /// Loads (or generates) the certificate and binds both listeners.
    pub async fn bind(config: Config) -> Result<Self> {
        match crate::sys::raise_descriptor_limit() {
            Ok((before, after)) if after > before => {
                tracing::info!(
                    before,
                    after,
                    "raised the open-descriptor limit to its hard limit"
                )
            }
            Ok((_, limit)) => tracing::info!(limit, "open-descriptor limit"),
            Err(err) => tracing::warn!(error = %err, "cannot raise the open-descriptor limit"),
        }
        // Registered before anything can be told we are up: SIGHUP's default
        // action would end the process.
        let hangup = Hangup::register();
        let (first, cert_path, files_version) = first_certificate(&config.cert)?;
        let https =
            listen(config.https_addr).with_context(|| bind_hint("HTTPS", config.https_addr))?;
        let http = listen(config.http_addr).with_context(|| bind_hint("HTTP", config.http_addr))?;
        let probe = match config.probe_addr {
            Some(addr) => Some(listen(addr).with_context(|| bind_hint("probe", addr))?),
            None => None,
        };
        if let Some(mss) = config.report_mss {
            // Reports must reach clients whose path drops full-size packets.
            if let Err(err) = crate::sys::set_max_segment(http.as_fd(), mss) {
                tracing::warn!(error = %err, mss, "cannot clamp the plain-HTTP listener's MSS");
            }
        }
        for listener in [Some(&https), Some(&http), probe.as_ref()]
            .into_iter()
            .flatten()
        {
            // Without it reports lack the SYN facts; everything else still works.
            if let Err(err) = crate::sys::enable_save_syn(listener.as_fd()) {
                tracing::warn!(error = %err, "TCP_SAVE_SYN unavailable: reports will not show the client's SYN");
            }
        }
        let (reports, shared_attempts, database) = match &config.database_url {
            Some(url) => {
                let opened = database::open(&url.0, &config).await?;
                (
                    Ok(opened.reports),
                    Some(opened.attempts),
                    Some(opened.background),
                )
            }
            None => (sqlite_reports(&config), None, None),
        };
        let metrics = metrics_http::prepare(&config.metrics).await?;
        if config.proxy_protocol {
            tracing::info!("PROXY protocol on: every connection must start with a PROXY v1 or v2 header from the load balancer");
        }
        let icmp = crate::icmp::Prober::open(config.icmp_mtu);
        if let Some(why) = icmp.unavailable(config.https_addr.ip()) {
            tracing::warn!(%why, "the ICMP test will not run; everything else works");
        }
        let icmp_heard = Arc::new(crate::icmp::heard::HeardTable::default());
        if let Err(why) = crate::icmp::heard::listen(icmp_heard.clone()) {
            tracing::warn!(%why, "reports will not name the router whose ICMP taught our kernel a path MTU toward a client");
        }
        let path_memory = crate::route::PathMemory::open(config.forget_path_mtu);
        if let Some(why) = path_memory.cannot_forget(config.https_addr.ip()) {
            tracing::warn!(%why, "a path MTU our kernel learns toward a client will not be forgotten when its next test starts: that test's connections may be shrunk and prove nothing about full-size packets (reports say so)");
        }
        let https_port = https.local_addr().map(|a| a.port()).unwrap_or(0);
        let packets = crate::packets::Packets::start(
            config.https_addr.ip(),
            &[https_port],
            config.packet_capture,
        );
        match packets.unavailable() {
            Some(crate::packets::Off::TurnedOff) => {
                tracing::info!("packet capture turned off (--no-packet-capture)")
            }
            Some(why) => {
                tracing::warn!(%why, "connections' packets will not be recorded; everything else works")
            }
            None => tracing::info!(
                port = https_port,
                "recording each HTTPS connection's packets"
            ),
        }
        let state = AppState::new(first.profile.clone(), config.attempts)
            .with_icmp(Arc::new(icmp))
            .with_packets(packets)
            .with_path_memory(Arc::new(path_memory))
            .with_icmp_heard(icmp_heard)
            .with_reports(reports)
            .with_metrics(metrics.metrics.clone())
            .with_admin_token(config.reports.admin_token.as_deref())
            .with_report_max_bytes(config.reports.max_bytes)
            .with_report_rate(crate::web::rate::Rate {
                burst: config.reports.burst,
                every: config.reports.every,
                ..crate::web::REPORT_RATE
            })
            .with_instance(&config.instance_name)
            .with_shared_attempts(shared_attempts.clone())
            .with_https_port(https_port)
            .with_http_port(http.local_addr().map(|a| a.port()).unwrap_or(0))
            .with_probe_port(
                probe
                    .as_ref()
                    .and_then(|p| p.local_addr().ok())
                    .map(|a| a.port()),
            );
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let served = Served::new(first, state.profile.clone());
        let acme_tls_alpn = matches!(&config.cert, CertSource::Acme { acme, .. }
            if acme.challenge == crate::config::AcmeChallenge::TlsAlpn01);
        let tls_config = certs::server_config(served.clone(), acme_tls_alpn)?;
        let shared = Arc::new(Shared {
            acceptor: TlsAcceptor::from(tls_config),
            app: web::router(state.clone()),
            state,
            admission: Listeners::new(&config),
            // Attempt ids are per process: with instances sharing attempts,
            // each starts at a random point so ids do not collide.
            next_id: AtomicU64::new(if shared_attempts.is_some() {
                database::random_first_id()
            } else {
                1
            }),
            config,
            shutdown: shutdown_rx,
        });
        Ok(Self {
            https,
            http,
            probe,
            shared,
            cert_path,
            shutdown,
            database,
            served,
            files_version,
            hangup,
            metrics,
        })
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The optional full-size plain-HTTP probe listener's address.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe.as_ref().and_then(|p| p.local_addr().ok())
    }

    /// The metrics listener's address (`--metrics-addr`), when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.addr()
    }

    /// The PEM file of the certificate being served (for clients that must trust it).
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// The certificate in service (it changes on reload and ACME renewal).
    pub fn served(&self) -> Arc<Served> {
        self.served.clone()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: stops
    /// accepting (the listeners close, so new connections are refused), lets
    /// requests in flight finish for up to `--shutdown-grace`, and returns.
    /// Connections still open then are left to be cut when the process exits.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        if let Ok(store) = &self.shared.state.reports {
            tokio::spawn(purge_reports(
                store.clone(),
                self.shared.config.reports.clone(),
            ));
        }
        let database = self.database.map(database::Background::spawn);
        let certificates = keep_certificate(
            self.shared.config.cert.clone(),
            self.served.clone(),
            self.shared.state.acme_tokens.clone(),
            self.files_version,
            self.hangup,
        );
        let shared = &self.shared;
        // Every connection task holds a clone; `recv` ends when all are gone.
        let (live, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
        // Each accept loop is a task of its own on a worker thread, not a
        // future of the thread that called `run`: a connection's task is then
        // spawned into that worker's own queue and usually runs there next,
        // where a spawn from outside the workers goes to the global queue and
        // wakes a parked worker through the driver, for every connection.
        let mut https = tokio::spawn(accept_loop(
            self.https,
            shared.admission.https.clone(),
            shared.clone(),
            live.clone(),
            tls::serve,
        ));
        let mut http = tokio::spawn(accept_loop(
            self.http,
            shared.admission.http.clone(),
            shared.clone(),
            live.clone(),
            plain::serve,
        ));
        let mut probe = self.probe.map(|probe| {
            tokio::spawn(accept_loop(
                probe,
                shared.admission.probe.clone(),
                shared.clone(),
                live.clone(),
                plain::serve_full_size,
            ))
        });
        let metrics = metrics_http::run(self.metrics.serving, shared.clone());
        tokio::select! {
            _ = shutdown => {},
            ended = &mut https => accept_ended("HTTPS", ended),
            ended = &mut http => accept_ended("HTTP", ended),
            ended = async {
                match probe.as_mut() {
                    Some(probe) => probe.await,
                    None => std::future::pending().await,
                }
            } => accept_ended("probe", ended),
            () = certificates => {},
            _ = metrics => {},
        }
        // Stop accepting: once an aborted loop's task is awaited, its
        // listener is closed and new connections to it are refused.
        for task in [Some(https), Some(http), probe].into_iter().flatten() {
            if !task.is_finished() {
                task.abort();
                let _ = task.await;
            }
        }
        // The accept loops, and with them the listeners, are gone.
        let grace = shared.config.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let open = shared.admission.https.held()
            + shared.admission.http.held()
            + shared.admission.probe.held();
        tracing::info!(
            open_connections = open,
            grace_ms = grace.as_millis() as u64,
            "shutting down: no new connections; letting requests in flight finish"
        );
        let _ = self.shutdown.send(true);
        drop(live);
        match tokio::time::timeout_at(deadline, all_closed.recv()).await {
            Ok(_) => tracing::info!("shutdown: every connection finished"),
            Err(_) => {
                let open = shared.admission.https.held()
                    + shared.admission.http.held()
                    + shared.admission.probe.held();
                tracing::warn!(
                    open_connections = open,
                    "shutdown grace over: closing the connections still open"
                );
            }
        }
        if let Some(database) = database {
            // Attempts recorded during the drain: written if the database answers in time.
            database
                .stop(deadline.max(tokio::time::Instant::now() + Duration::from_secs(1)))
                .await;
        }
    }
}

/// The embedded report store: SQLite in the data directory.
fn sqlite_reports(config: &Config) -> Result<Arc<dyn ReportStore>, &'static str> {
    match SqliteReportStore::open(&config.reports.data_dir) {
        Ok(store) => {
            tracing::info!(db = %store.path().display(), "saving reports");
            Ok(Arc::new(store))
        }
        Err(err) => {
            // Diagnosis still works; reports say why they were not saved.
            tracing::error!(error = %err, "reports cannot be saved");
            Err(err.public_message())
        }
    }
}

/// The certificate to serve from the start, the file it came from, and
/// (for --tls-cert) the version the reload watcher compares against.
fn first_certificate(
    source: &CertSource,
) -> Result<(ServedCert, PathBuf, Option<certs::reload::Version>)> {
    match source {
        CertSource::Acme { acme, .. } => {
            if let Some(saved) = certs::acme::saved_certificate(acme) {
                let store = certs::acme::store::Store::new(&acme.data_dir, &acme.directory);
                return Ok((saved, store.cert_path(), None));
            }
        }
        CertSource::Files { cert, key, .. } => {
            let (first, version) = certs::reload::load_first(cert, key).with_context(|| {
                format!("the certificate in {} cannot be served", cert.display())
            })?;
            return Ok((first, cert.clone(), Some(version)));
        }
        CertSource::Generated { .. } => {}
    }
    let identity = certs::load(source)?;
    let path = identity.cert_path.clone();
    let origin = path.display().to_string();
    let first = ServedCert::new(identity, origin)
        .with_context(|| format!("the certificate in {} cannot be served", path.display()))?;
    Ok((first, path, None))
}

/// Keeps the certificate current: file reloads, ACME orders, or (for the
/// generated one) only noting SIGHUPs. Never completes.
async fn keep_certificate(
    source: CertSource,
    served: Arc<Served>,
    tokens: Arc<certs::acme::Http01Tokens>,
    files_version: Option<certs::reload::Version>,
    mut hangup: Hangup,
) {
    match (source, files_version) {
        (
            CertSource::Files {
                cert,
                key,
                reload_every,
            },
            Some(first),
        ) => certs::reload::watch(cert, key, reload_every, served, first, hangup).await,
        (CertSource::Acme { acme, .. }, _) => {
            tokio::join!(certs::acme::run(acme, served, tokens), async {
                loop {
                    hangup.recv().await;
                    tracing::info!("SIGHUP: the ACME certificate renews on its own schedule");
                }
            });
        }
        _ => loop {
            hangup.recv().await;
            tracing::info!("SIGHUP: the generated certificate has nothing to reload");
        },
    }
}

/// The connection's SYN (read once, here), a `TCP_INFO` handle, and the MSS
/// clamp of the listener it came in on. Behind a load balancer (`behind`)
/// there are none: the TCP connection is the balancer's, and nothing about
/// the client may be judged from it (its SYN is in the connection's `Via`).
pub(crate) fn tcp_facts(socket: &Socket, mss_clamp: Option<u32>, behind: bool) -> TcpFacts {
    if behind {
        return TcpFacts {
            mss_clamp,
            ..TcpFacts::default()
        };
    }
    TcpFacts {
        syn: saved_syn(socket).map(Arc::new),
        handle: Some(socket.handle()),
        mss_clamp,
        our_mss_at_start: None,
    }
}

/// The SYN the kernel kept for this connection (readable once).
fn saved_syn(socket: &Socket) -> Option<crate::tcp::SynInfo> {
    crate::sys::saved_syn(socket.stream().as_fd(), |bytes| {
        (!bytes.is_empty())
            .then(|| crate::tcp::syn::parse(bytes).ok())
            .flatten()
    })
    .ok()
    .flatten()
}

// --- PROXY protocol (`--proxy-protocol`) ---

/// Reads the connection's PROXY header: who the client is, and the balancer.
async fn proxied(
    socket: &Socket,
    balancer: SocketAddr,
    shared: &Shared,
) -> Result<Peer, ProxyError> {
    let deadline = crate::proxy::HEADER_TIMEOUT.min(shared.config.hello_timeout);
    let (header, _) = crate::proxy::read_header(socket.stream(), deadline).await?;
    Ok(Peer {
        client: header.source.unwrap_or(balancer),
        via: Some(Arc::new(Via {
            balancer,
            version: header.version,
            kind: header.kind,
            destination: header.destination,
            balancer_syn: saved_syn(socket),
        })),
    })
}

/// With `--proxy-protocol`: the header, then the connection's place under
/// its client's address (it was admitted under the balancer's). `None`: the
/// connection is to be closed (no valid header, shed, or no room).
async fn admit_proxied(
    socket: &Socket,
    balancer: SocketAddr,
    admission: &Arc<Admission>,
    activity: &Arc<Activity>,
    ticket: admission::Ticket,
    shared: &Shared,
) -> Option<(Peer, admission::Ticket)> {
    let header = tokio::select! {
        header = proxied(socket, balancer, shared) => header,
        () = activity.shed_requested() => {
            tracing::debug!(%balancer, "connection shed to make room while its PROXY header arrived");
            return None;
        }
    };
    let peer = match header {
        Ok(peer) => peer,
        Err(err) => {
            admission
                .counters
                .proxy_rejected
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                listener = admission.name(), %balancer, reason = %err,
                "connection closed: no valid PROXY header"
            );
            return None;
        }
    };
    if peer.client.ip().to_canonical() == balancer.ip().to_canonical() {
        return Some((peer, ticket));
    }
    drop(ticket);
    let ticket = admission.admit(peer.client.ip(), activity.clone())?;
    Some((peer, ticket))
}

/// Deletes expired reports now and every `purge_interval`.
async fn purge_reports(store: Arc<dyn ReportStore>, settings: crate::config::ReportSettings) {
    let mut tick = tokio::time::interval(settings.purge_interval);
    loop {
        tick.tick().await;
        let store = store.clone();
        let cutoff = std::time::SystemTime::now() - settings.retention;
        let max = settings.max_bytes;
        match tokio::task::spawn_blocking(move || store.purge(cutoff, max)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "deleted expired reports"),
            Ok(Err(err)) => tracing::error!(error = %err, "deleting expired reports failed"),
            Err(err) => tracing::error!(error = %err, "report purge task failed"),
        }
    }
}

/// Connections the kernel may hold completed but not yet accepted (capped by
/// `net.core.somaxconn`). The default of 128 overflowed in tests: a burst of
/// new connections (a NAT's users at once, a flood from elsewhere) then had
/// SYNs dropped, and each dropped SYN costs its client a second.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart can bind while old connections
    // of the previous process sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn bind_hint(what: &str, addr: SocketAddr) -> String {
    format!(
        "binding the {what} listener to {addr} (is another process using the port? \
         ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    )
}

/// Logs why an accept loop's task ended: it never returns, so it panicked.
fn accept_ended(listener: &str, ended: Result<(), tokio::task::JoinError>) {
    if let Err(err) = ended {
        tracing::error!(listener, error = %err, "accept loop ended");
    }
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    admission: Arc<Admission>,
    shared: Arc<Shared>,
    live: tokio::sync::mpsc::Sender<()>,
    handle: F,
) where
    F: Fn(Socket, Peer, SocketAddr, Arc<Activity>, Arc<Shared>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Duration::from_millis(5);
    // A listener bound to one address accepts only on that address: no
    // system call per connection to ask which. A wildcard one must ask.
    let bound = listener
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let activity = Arc::new(Activity::new(tokio::time::Instant::now()));
                let Some(ticket) = admission.admit(peer.ip(), activity.clone()) else {
                    continue; // dropping the stream closes it
                };
                let local = bound.unwrap_or_else(|| {
                    stream
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
                });
                let socket = Socket::new(stream);
                let (shared, admission, handle) =
                    (shared.clone(), admission.clone(), handle.clone());
                let live = live.clone();
                tokio::spawn(async move {
                    // Held until the connection ends: shutdown waits for it.
                    let _live = live;
                    let (who, ticket) = if shared.config.proxy_protocol {
                        // Boxed: only connections behind a balancer pay for it.
                        let admitted = Box::pin(admit_proxied(
                            &socket, peer, &admission, &activity, ticket, &shared,
                        ))
                        .await;
                        match admitted {
                            Some(admitted) => admitted,
                            None => return,
                        }
                    } else {
                        (Peer::direct(peer), ticket)
                    };
                    // Boxed: `select!` below moves what it polls, and an unboxed
                    // connection future would be held twice in the task, for the
                    // connection's whole life.
                    let task =
                        Box::pin(handle(socket, who, local, activity.clone(), shared.clone()));
                    tokio::select! {
                        () = task => {}
                        () = activity.shed_requested() => {
                            tracing::debug!(%peer, "connection shed to make room");
                        }
                    }
                    drop(ticket);
                });
            }
            Err(err) => {
                let out_of_descriptors =
                    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
                if out_of_descriptors {
                    tracing::error!(
                        error = %err,
                        limit = crate::sys::descriptor_limit(),
                        backoff_ms = backoff.as_millis() as u64,
                        "accept failed: out of file descriptors; raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower --max-connections"
                    );
                } else {
                    tracing::warn!(error = %err, backoff_ms = backoff.as_millis() as u64, "accept failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
