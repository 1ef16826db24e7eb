//! Probe data: the server's observation of each transfer, the client's report
//! of the same run, and the two merged step by step. Pure data.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::recent::Recorded;
use crate::tcp::TcpInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Server to client (`GET /probe/down/{n}`).
    Down,
    /// Client to server (`POST /probe/up`).
    Up,
}

/// One `TCP_INFO` sample during a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TcpSample {
    pub at_ms: f64,
    /// Bytes acknowledged since the transfer started.
    pub acked: u64,
    pub unacked: u32,
    pub retransmits: u8,
    pub total_retrans: u32,
}

/// How a watched download ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchResult {
    pub completed: bool,
    pub stalled: bool,
    /// Bytes acknowledged by the client during the transfer.
    pub acked: u64,
    /// Bytes handed to the connection.
    pub handed: u64,
    pub duration_ms: f64,
    pub before: Option<TcpInfo>,
    pub after: Option<TcpInfo>,
    pub samples: Vec<TcpSample>,
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// The server's side of one probe transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeObservation {
    pub id: u64,
    /// Not reported: reports are read by address already.
    #[serde(skip, default = "unspecified")]
    pub peer: SocketAddr,
    pub run: Option<String>,
    pub direction: Direction,
    /// Bytes the step was meant to move.
    pub bytes: u64,
    /// Bytes that made it: acknowledged (down) or received (up).
    pub transferred: u64,
    pub completed: bool,
    pub stalled: bool,
    pub duration_ms: f64,
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub started_at: SystemTime,
    pub before: Option<TcpInfo>,
    pub after: Option<TcpInfo>,
    pub samples: Vec<TcpSample>,
    /// The packets this transfer could use.
    pub packets: PacketLimits,
    /// Our own ICMP test, when an upload stalled behind a black hole.
    #[serde(default)]
    pub icmp_probe: Option<crate::attempt::IcmpProbe>,
}

/// What limited the packets of the connection a transfer ran on. A transfer
/// over a connection clamped below the client's own MSS cannot show a black
/// hole for full-size packets, whatever it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PacketLimits {
    /// Over TLS (the HTTPS port) or plain HTTP.
    pub over_tls: bool,
    /// The MSS our listener clamped the connection to.
    pub mss_clamp: Option<u32>,
    /// The client's MSS from its SYN: the largest segment it can receive and,
    /// unless told otherwise, the size it sends.
    pub client_mss: Option<u32>,
    /// The MSS we announced, as `TCP_INFO` had it when the connection's
    /// ClientHello arrived (later snapshots follow what we learned since).
    pub our_mss_at_start: Option<u32>,
}

impl PacketLimits {
    /// Whether our clamp kept this connection's segments below what the
    /// client offered (or below a full Ethernet segment when its SYN is unknown).
    pub fn clamped(&self) -> bool {
        match (self.mss_clamp, self.client_mss) {
            (Some(clamp), Some(client)) => clamp < client,
            (Some(clamp), None) => clamp < 1460,
            (None, _) => false,
        }
    }
}

/// Bytes of the TCP timestamp option, aligned.
const TIMESTAMP_OPTION: u32 = 12;

impl ProbeObservation {
    /// The largest segment size this transfer used in its direction, from
    /// `TCP_INFO`: ours toward the client, or the largest the client sent us.
    pub fn segment_bytes(&self) -> Option<u32> {
        let of = |t: &TcpInfo| match self.direction {
            Direction::Down => t.snd_mss,
            Direction::Up => t.rcv_mss,
        };
        [self.before.as_ref(), self.after.as_ref()]
            .into_iter()
            .flatten()
            .map(of)
            .max()
            .filter(|&mss| mss > 0)
    }

    /// Whether this transfer put full-size packets on the path in its
    /// direction. `largest_client_mss` is the largest MSS the client announced
    /// on any connection of the run.
    ///
    /// Down: our segments are capped by the client's MSS; a connection whose
    /// MSS is below what the client announced elsewhere was opened after the
    /// client learned a smaller path MTU (from ICMP its own uploads caused),
    /// so its transfers cannot show what happens to full-size packets toward
    /// it. Up: the client's segments are capped by the MSS we announced; ours
    /// shrinks once we learn a smaller path MTU toward the client, and then
    /// the client never sends full-size packets on that connection. Either
    /// way the step must also be large enough to need a full segment, on a
    /// connection our listener did not clamp.
    pub fn exercised_full_size(&self, largest_client_mss: Option<u32>) -> bool {
        if self.packets.clamped() {
            return false;
        }
        let client_mss = self.packets.client_mss.unwrap_or(1460).max(536);
        let full = match self.direction {
            Direction::Down => largest_client_mss.is_none_or(|m| client_mss >= m),
            // With TCP timestamps the kernel reports our MSS 12 bytes
            // smaller than the one it announced.
            Direction::Up => self
                .packets
                .our_mss_at_start
                .is_none_or(|ours| ours + TIMESTAMP_OPTION >= client_mss),
        };
        full && self.bytes >= 2 * u64::from(client_mss)
    }

    /// Retransmissions during the transfer, from `TCP_INFO`.
    pub fn retransmissions(&self) -> u32 {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => a.total_retrans.saturating_sub(b.total_retrans),
            _ => 0,
        }
    }

    /// Segments that arrived out of order during the transfer (uploads).
    pub fn out_of_order(&self) -> u32 {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => a.rcv_ooopack.saturating_sub(b.rcv_ooopack),
            _ => 0,
        }
    }
}

impl Recorded for ProbeObservation {
    fn address(&self) -> std::net::IpAddr {
        self.peer.ip()
    }

    fn id(&self) -> u64 {
        self.id
    }

    fn approx_bytes(&self) -> usize {
        512 + self.samples.len() * std::mem::size_of::<TcpSample>()
    }
}

/// One step as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientStep {
    pub bytes: u64,
    pub ok: bool,
    #[serde(default)]
    pub ms: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /api/v1/probe/results`: the client's view of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientResults {
    pub run: String,
    pub agent: String,
    /// Support's case label, from the page's `?case=` (or check.sh's).
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub client_time_ms: Option<f64>,
    #[serde(default)]
    pub clock_offset_ms: Option<f64>,
    #[serde(default)]
    pub down: Vec<ClientStep>,
    #[serde(default)]
    pub up: Vec<ClientStep>,
    /// check.sh's ClientHello size ladder (sizes are the ClientHello's bytes
    /// on the wire; `error` is "timeout" or "reset" when one did not complete).
    #[serde(default)]
    pub hello: Vec<ClientStep>,
    /// check.sh's certificate check over HTTPS.
    #[serde(default)]
    pub tls_check: Option<TlsCheck>,
    /// Milliseconds from the run's start to this post, by the client's own
    /// monotonic clock: a duration, so no clock offset is in it. Places the
    /// run, and each of its HTTPS tries, on the server's clock.
    #[serde(default)]
    pub run_ms: Option<f64>,
    /// The page's own HTTPS requests before its ladders, in order (a fast
    /// failure is tried once more on a fresh connection).
    #[serde(default)]
    pub https: Vec<HttpsTry>,
    /// The proxy the client says it was told to use (check.sh reads
    /// `https_proxy`), as `host:port`; the browser cannot know its own.
    #[serde(default)]
    pub proxy: Option<String>,
}

/// One HTTPS request the client made to check that HTTPS works at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsTry {
    pub ok: bool,
    /// What the client saw: `timeout`, or the error's word (the browser's is
    /// only ever `failed`: it is told no more).
    #[serde(default)]
    pub error: Option<String>,
    /// When the try began, in milliseconds since the run's start.
    pub started_ms: f64,
    /// How long it took to succeed or fail.
    pub ms: f64,
}

/// Most HTTPS tries accepted in one run's results.
pub const MAX_HTTPS_TRIES: usize = 4;

/// The longest run the results may describe (`run_ms`): far beyond the
/// page's two-minute budget and check.sh's timeouts.
pub const MAX_RUN_MS: f64 = 30.0 * 60.0 * 1000.0;

/// What check.sh saw of our certificate, verifying it as curl normally would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCheck {
    /// Whether curl accepted our certificate chain.
    pub verified: bool,
    /// The issuer curl was shown (when it was not accepted), as curl printed it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// curl's error, when the HTTPS request failed outright.
    #[serde(default)]
    pub error: Option<String>,
    /// How long the verifying request took, in milliseconds (it is the
    /// run's first request, so it began as the run did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
}

/// Most steps accepted per direction.
pub const MAX_STEPS: usize = 64;

impl ClientResults {
    /// Checks what serde cannot: lengths, the run id, known agents.
    pub fn validate(&self) -> Result<(), String> {
        if !super::valid_run_id(&self.run) {
            return Err("run must be 8 to 64 characters of A-Z, a-z, 0-9, _ and -".into());
        }
        if self
            .label
            .as_deref()
            .is_some_and(|l| !crate::reports::valid_label(l))
        {
            return Err(
                "label must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'".into(),
            );
        }
        if !matches!(self.agent.as_str(), "browser" | "check.sh") {
            return Err("agent must be \"browser\" or \"check.sh\"".into());
        }
        let https_failed = self.tls_check.as_ref().is_some_and(|c| c.error.is_some())
            || self.https.iter().any(|t| !t.ok);
        if self.down.is_empty() && self.up.is_empty() && self.hello.is_empty() && !https_failed {
            return Err("no steps: run at least one transfer before posting results".into());
        }
        if self.down.len() > MAX_STEPS || self.up.len() > MAX_STEPS || self.hello.len() > MAX_STEPS
        {
            return Err(format!("at most {MAX_STEPS} steps per direction"));
        }
        if let Some(check) = &self.tls_check {
            let long = |t: &Option<String>| t.as_ref().is_some_and(|t| t.len() > 200);
            if long(&check.issuer) || long(&check.error) {
                return Err("tls_check texts are limited to 200 characters".into());
            }
        }
        let duration = |ms: f64| ms.is_finite() && (0.0..=MAX_RUN_MS).contains(&ms);
        if self.run_ms.is_some_and(|ms| !duration(ms)) {
            return Err("run_ms must be a number of milliseconds up to 30 minutes".into());
        }
        if self.https.len() > MAX_HTTPS_TRIES {
            return Err(format!("at most {MAX_HTTPS_TRIES} HTTPS tries"));
        }
        for t in &self.https {
            if !duration(t.started_ms) || !duration(t.ms) {
                return Err("an HTTPS try's started_ms and ms must be milliseconds".into());
            }
            if t.error.as_ref().is_some_and(|e| e.len() > 200) {
                return Err("error text is limited to 200 characters".into());
            }
        }
        if self
            .tls_check
            .as_ref()
            .and_then(|c| c.ms)
            .is_some_and(|ms| !duration(ms))
        {
            return Err("tls_check.ms must be milliseconds".into());
        }
        if self
            .proxy
            .as_ref()
            .is_some_and(|p| p.len() > 200 || !p.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err("proxy must be up to 200 printable characters".into());
        }
        for step in self.down.iter().chain(&self.up).chain(&self.hello) {
            if step.bytes > super::MAX_PROBE_BYTES {
                return Err(format!(
                    "step of {} bytes is over the probe limit",
                    step.bytes
                ));
            }
            if step.error.as_ref().is_some_and(|e| e.len() > 200) {
                return Err("error text is limited to 200 characters".into());
            }
            if step.ms.is_some_and(|ms| !ms.is_finite() || ms < 0.0) {
                return Err("ms must be a non-negative number".into());
            }
        }
        Ok(())
    }
}

/// One step with both sides' views.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    pub bytes: u64,
    pub client: Option<ClientStep>,
    pub server: Option<ProbeObservation>,
}

impl StepView {
    /// Passed: the client received (or we received) every byte. The client's
    /// word decides: on a reused connection the server's watcher of one step
    /// also sees the next step's bytes, so its "stalled" may be the next
    /// step's. (A pass proves a full-size path only with the server's view of
    /// the packets; see [`ProbeObservation::exercised_full_size`].)
    pub fn passed(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.ok)
    }

    /// Failed: the client says so or, without the client's word, the server
    /// saw it stall.
    pub fn failed(&self) -> bool {
        match &self.client {
            Some(c) => !c.ok,
            None => self.server.as_ref().is_some_and(|s| s.stalled),
        }
    }
}

/// A whole run: both ladders, merged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeRun {
    pub run: String,
    pub agent: String,
    /// Client clock minus server clock, in milliseconds, when known.
    pub clock_offset_ms: Option<f64>,
    pub down: Vec<StepView>,
    pub up: Vec<StepView>,
}

impl ProbeRun {
    /// Pairs the client's steps with the server's observations of the same run
    /// (by direction and size; the newest observation wins).
    pub fn merge(
        results: &ClientResults,
        observations: &[std::sync::Arc<ProbeObservation>],
        server_now_ms: f64,
    ) -> Self {
        let pair = |direction: Direction, steps: &[ClientStep]| -> Vec<StepView> {
            steps
                .iter()
                .map(|step| StepView {
                    bytes: step.bytes,
                    client: Some(step.clone()),
                    server: observations
                        .iter()
                        .find(|o| {
                            o.direction == direction
                                && o.bytes == step.bytes
                                && o.run.as_deref() == Some(&results.run)
                        })
                        .map(|o| (**o).clone()),
                })
                .collect()
        };
        let clock_offset_ms = results
            .clock_offset_ms
            .or_else(|| results.client_time_ms.map(|t| t - server_now_ms));
        Self {
            run: results.run.clone(),
            agent: results.agent.clone(),
            clock_offset_ms,
            down: pair(Direction::Down, &results.down),
            up: pair(Direction::Up, &results.up),
        }
    }
}
