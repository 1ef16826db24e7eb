//! One side of a comparison: a saved run report, read as far as its fields
//! allow. A document saved under today's schema gives every field; one saved
//! by an older tlsdiag is read field by field, each with today's types, and
//! whatever is absent or no longer reads is named in [`Side::missing`]
//! instead of failing the whole comparison (`RunReport::from_json` refuses
//! other schema versions; the comparison must not).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::attempt::{Negotiated, Outcome};
use crate::diagnose::{Finding, ProxyUse, Severity, Status, TlsCheck};
use crate::fingerprint::Fingerprints;
use crate::hello::ClientHello;
use crate::probe::{ClientStep, StepView};
use crate::report::{ArrivalView, AttemptView, BalancerView, RunAttempt, RUN_SCHEMA_VERSION};
use crate::tcp::SynInfo;

/// Which of a run's clients made a connection. check.sh runs two: curl makes
/// its requests and openssl sends its ClientHello size ladder; a browser is
/// one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client software that ran the test: its requests' connections, and
    /// those evidence ties to it.
    Client,
    /// check.sh's ClientHello size ladder (openssl s_client).
    HelloLadder,
}

impl Role {
    pub fn of(attempt: &RunAttempt) -> Self {
        match attempt.tie {
            crate::diagnose::attribution::Tie::HelloLadder => Role::HelloLadder,
            _ => Role::Client,
        }
    }
}

/// A whole ClientHello one side kept, parsed again from its bytes.
#[derive(Debug, Clone)]
pub struct KeptHello {
    pub role: Role,
    pub hello: ClientHello,
    pub fingerprints: Fingerprints,
    /// Where it came from, in words ("attempt #12", "the posting connection").
    pub source: String,
}

/// The posting connection's TLS, when the results came over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct PostingTls {
    pub negotiated: Option<Negotiated>,
    pub arrival: Option<ArrivalView>,
    pub fingerprints: Option<Fingerprints>,
}

/// One saved report, as the comparison reads it.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub id: String,
    pub schema_version: Option<u32>,
    pub created_at: Option<String>,
    pub server_version: Option<String>,
    pub label: Option<String>,
    pub agent: Option<String>,
    pub status: Option<Status>,
    pub verdict: Option<String>,
    pub worst: Option<Severity>,
    pub findings: Vec<Finding>,
    pub down: Vec<StepView>,
    pub up: Vec<StepView>,
    /// check.sh's ClientHello size ladder.
    pub hello_ladder: Vec<ClientStep>,
    pub tls_check: Option<TlsCheck>,
    pub clock_offset_ms: Option<f64>,
    pub client_address: Option<String>,
    /// The run's own HTTPS connections (`None` in reports saved before they
    /// were told apart from other clients').
    pub attempts: Option<Vec<RunAttempt>>,
    pub other_clients: usize,
    pub proxy: Option<ProxyUse>,
    /// The posting connection's SYN.
    pub syn: Option<SynInfo>,
    pub user_agent: Option<String>,
    /// `http` or `https`: how the results were posted.
    pub posted_over: Option<String>,
    pub posting_tls: Option<PostingTls>,
    pub load_balancer: Option<BalancerView>,
    /// The instances whose listeners saw the run's connections.
    pub instances: Vec<String>,
    /// Whole ClientHellos kept in the report, newest first.
    pub hellos: Vec<KeptHello>,
    /// What this report lacks that a current one carries, in words.
    pub missing: Vec<String>,
}

/// Why a stored document cannot be compared at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("the stored report is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the stored report is not a JSON object")]
    NotObject,
}

/// Reads fields one at a time, noting those absent or unreadable.
struct Loose<'a> {
    doc: &'a Value,
    missing: Vec<String>,
}

impl Loose<'_> {
    /// The field at `pointer`: `None` when it is null, and when it is absent
    /// or does not read as a `T` (then noted as missing, as `what`).
    fn get<T: DeserializeOwned>(&mut self, pointer: &str, what: &str) -> Option<T> {
        match self.doc.pointer(pointer) {
            None => {
                self.missing.push(format!("{what} (not in this report)"));
                None
            }
            Some(Value::Null) => None,
            Some(value) => match serde_json::from_value(value.clone()) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.missing.push(format!(
                        "{what} (saved in a shape this version does not read)"
                    ));
                    None
                }
            },
        }
    }

    /// A field that current reports may leave out: absent or null is `None`,
    /// and only an unreadable value is noted.
    fn optional<T: DeserializeOwned>(&mut self, pointer: &str, what: &str) -> Option<T> {
        match self.doc.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(_) => self.get(pointer, what),
        }
    }

    /// A list read item by item: one unreadable item does not lose the rest.
    fn list<T: DeserializeOwned>(&mut self, pointer: &str, what: &str) -> Option<Vec<T>> {
        let items: Vec<Value> = self.get(pointer, what)?;
        let total = items.len();
        let read: Vec<T> = items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        if read.len() < total {
            self.missing.push(format!(
                "{} of the {total} items of {what} (saved in a shape this version does not read)",
                total - read.len()
            ));
        }
        Some(read)
    }
}

impl Side {
    /// Reads the stored JSON of report `id`.
    pub fn from_json(id: &str, json: &str) -> Result<Self, ReadError> {
        let doc: Value = serde_json::from_str(json)?;
        Self::from_value(id, &doc)
    }

    pub fn from_value(id: &str, doc: &Value) -> Result<Self, ReadError> {
        if !doc.is_object() {
            return Err(ReadError::NotObject);
        }
        let mut l = Loose {
            doc,
            missing: Vec::new(),
        };
        let schema_version: Option<u32> = l.get("/schema_version", "the schema version");
        let mut side = Side {
            id: id.to_owned(),
            schema_version,
            created_at: l.get("/created_at", "when it was saved"),
            server_version: l.get("/server_version", "the tlsdiag version"),
            label: l.optional("/label", "the case label"),
            agent: l.get("/agent", "which test ran"),
            status: l.get("/status", "the status"),
            verdict: l.get("/verdict", "the verdict"),
            worst: l.optional("/worst", "the worst severity"),
            findings: l.list("/findings", "the findings").unwrap_or_default(),
            down: l
                .list("/probe/down", "the download ladder")
                .unwrap_or_default(),
            up: l.list("/probe/up", "the upload ladder").unwrap_or_default(),
            hello_ladder: l
                .optional("/probe/hello", "check.sh's ClientHello sizes")
                .unwrap_or_default(),
            tls_check: l.optional("/probe/tls_check", "the certificate check"),
            clock_offset_ms: l.optional("/probe/clock_offset_ms", "the clock offset"),
            client_address: l.get("/client/address", "the client's address"),
            other_clients: doc
                .pointer("/other_clients")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            proxy: l.optional("/proxy", "the proxy"),
            syn: l.optional("/connection/syn", "the SYN"),
            user_agent: l.optional("/connection/connection/user_agent", "the User-Agent"),
            posted_over: l.optional("/connection/connection/scheme", "how the results came"),
            load_balancer: l.optional("/connection/load_balancer", "the load balancer"),
            ..Side::default()
        };
        if doc.pointer("/attempts").is_some() {
            side.attempts = l.list("/attempts", "the run's own connections");
        } else {
            l.missing.push(
                "which connections were the run's own (`attempts`): saved before tlsdiag told \
                 them apart from other clients', so only the connection that posted the results \
                 is compared"
                    .to_owned(),
            );
        }
        if let Some(tls) = doc.pointer("/connection/tls").filter(|t| !t.is_null()) {
            let mut posting = PostingTls {
                negotiated: l.optional(
                    "/connection/tls/negotiated",
                    "the posting connection's negotiation",
                ),
                arrival: l.optional(
                    "/connection/tls/arrival",
                    "how the posting connection's ClientHello arrived",
                ),
                fingerprints: l.optional(
                    "/connection/tls/fingerprints",
                    "the posting connection's fingerprints",
                ),
            };
            match tls.get("raw_base64").and_then(Value::as_str) {
                Some(raw) => {
                    if let Some((hello, fingerprints)) = parse_hello(raw) {
                        posting
                            .fingerprints
                            .get_or_insert_with(|| fingerprints.clone());
                        side.hellos.push(KeptHello {
                            role: Role::Client,
                            hello,
                            fingerprints,
                            source: "the connection that posted the results".to_owned(),
                        });
                    }
                }
                None => l.missing.push(
                    "the posting connection's ClientHello bytes (`raw_base64`): its lists are \
                     compared by fingerprint only"
                        .to_owned(),
                ),
            }
            side.posting_tls = Some(posting);
        }
        side.instances = instances(doc, side.attempts.as_deref());
        if let Some(attempts) = &side.attempts {
            // Newest first, ahead of the posting connection's hello.
            let kept: Vec<KeptHello> = attempts
                .iter()
                .filter_map(|a| {
                    let (hello, fingerprints) = parse_hello(a.hello_base64.as_deref()?)?;
                    Some(KeptHello {
                        role: Role::of(a),
                        hello,
                        fingerprints,
                        source: format!("attempt #{}", a.attempt.id),
                    })
                })
                .collect();
            let parsed_without_bytes = attempts
                .iter()
                .any(|a| a.attempt.tls.fingerprints.is_some() && a.hello_base64.is_none());
            if kept.is_empty() && parsed_without_bytes {
                l.missing.push(
                    "the run's whole ClientHellos (`hello_base64`): saved before tlsdiag kept \
                     them, so their lists are compared by fingerprint only"
                        .to_owned(),
                );
            }
            side.hellos.splice(0..0, kept);
        }
        if schema_version.is_some_and(|v| v != RUN_SCHEMA_VERSION) {
            l.missing.insert(
                0,
                format!(
                    "saved under report schema {} (this tlsdiag writes {RUN_SCHEMA_VERSION}): \
                     compared as far as its fields allow",
                    schema_version.unwrap_or_default()
                ),
            );
        }
        side.missing = l.missing;
        Ok(side)
    }

    /// The run's own attempts of `role`, newest first.
    pub fn attempts_of(&self, role: Role) -> impl Iterator<Item = &AttemptView> {
        self.attempts
            .iter()
            .flatten()
            .filter(move |a| Role::of(a) == role)
            .map(|a| &a.attempt)
    }

    /// The newest whole ClientHello of `role`.
    pub fn hello(&self, role: Role) -> Option<&KeptHello> {
        self.hellos.iter().find(|h| h.role == role)
    }

    /// The run's own attempts whose ClientHello never arrived whole.
    pub fn stuck(&self) -> Vec<&AttemptView> {
        self.attempts_of(Role::Client)
            .chain(self.attempts_of(Role::HelloLadder))
            .filter(|a| stuck(&a.outcome))
            .collect()
    }

    /// Whether the document says who ran it with a browser.
    pub fn browser(&self) -> bool {
        self.agent.as_deref() == Some("browser")
    }
}

/// A ClientHello that never arrived whole.
pub fn stuck(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::HelloIncomplete { .. } | Outcome::NoData { .. }
    )
}

fn parse_hello(base64: &str) -> Option<(ClientHello, Fingerprints)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    let hello = crate::hello::parse_client_hello(&raw).ok()?;
    let fingerprints = Fingerprints::of(&hello);
    Some((hello, fingerprints))
}

/// The instances that saw the run: its attempts' (`--instance-name`), else
/// the one that answered, when instances share attempts.
fn instances(doc: &Value, attempts: Option<&[RunAttempt]>) -> Vec<String> {
    let mut names: Vec<String> = attempts
        .into_iter()
        .flatten()
        .filter_map(|a| a.attempt.instance.clone())
        .collect();
    if let Some(answered) = doc
        .pointer("/connection/shared_attempts/instance")
        .and_then(Value::as_str)
    {
        names.push(answered.to_owned());
    }
    names.sort();
    names.dedup();
    names
}
