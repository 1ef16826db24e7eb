//! Findings from what the run's client itself saw and how it reached us:
//! its own HTTPS request failing (evidence even when nothing of it reached
//! us), and the proxy its requests came through (then every TCP fact we
//! measured is the proxy's connection, not the customer's computer's).

use serde::{Deserialize, Serialize};

use super::attribution::FailedTry;
use super::{Finding, Severity};
use crate::attempt::RequestFacts;
use crate::util::printable;

/// What the run's client reported of itself, beyond its transfers.
#[derive(Debug, Clone, Default)]
pub struct ClientSide {
    /// Who ran the test, as the words name it: "your browser", "check.sh".
    pub who: &'static str,
    /// Its HTTPS requests that failed, the certificate check's included.
    pub failed: Vec<FailedTry>,
    /// The first HTTPS request that failed outright (no answer at all), as
    /// the client named the failure.
    pub request_failed: Option<String>,
    /// A later try on a new connection worked.
    pub recovered: bool,
    /// The proxy the run's requests came through.
    pub proxy: Option<ProxyUse>,
}

/// A forwarding proxy between the run's client and us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUse {
    /// What it calls itself (`squid/5.7`), or its address.
    pub name: String,
    /// How we know, in sentences.
    pub evidence: Vec<String>,
    /// The plain-HTTP request of the run that carried its headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestFacts>,
}

impl ProxyUse {
    /// The proxy a request's headers name, if it came through one.
    pub fn from_request(facts: &RequestFacts) -> Option<Self> {
        let via = facts.proxy_headers.iter().find(|h| h.name == "via");
        let name = via
            .and_then(|h| via_product(&h.value))
            .or_else(|| {
                via.and_then(|h| h.value.split_whitespace().nth(1))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "a forwarding proxy".to_owned());
        let first = facts.proxy_headers.first()?;
        Some(Self {
            name: printable(&name),
            evidence: vec![format!(
                "the run's plain-HTTP requests arrived with the header a forwarding proxy adds ({}: {})",
                first.name,
                printable(&first.value)
            )],
            request: Some(facts.clone()),
        })
    }

    /// The proxy check.sh was told to use (`https_proxy`), when no header
    /// showed one.
    pub fn configured(address: &str) -> Self {
        Self {
            name: printable(address),
            evidence: vec![format!(
                "check.sh ran with https_proxy set to {}",
                printable(address)
            )],
            request: None,
        }
    }
}

/// The product in a `Via` entry's comment: `1.1 host (squid/5.7)` → `squid/5.7`.
fn via_product(value: &str) -> Option<String> {
    let last = value.split(',').next_back()?;
    let open = last.find('(')?;
    let close = last[open..].find(')')? + open;
    let product = last[open + 1..close].trim();
    (!product.is_empty()).then(|| product.chars().take(64).collect())
}

/// The run's own HTTPS request failed, and nothing that reached us explains
/// it: never "nothing failed".
pub fn https_failed(client: &ClientSide, own_failed: bool) -> Option<Finding> {
    let error = client.request_failed.as_deref()?;
    if own_failed {
        // An attempt of its own that failed says more than the client's word.
        return None;
    }
    let who = client.who;
    let f = if client.recovered {
        Finding::new(
            "run.https-failed",
            Severity::Warning,
            format!(
                "{}'s first HTTPS request failed ({}); a retry on a new connection worked",
                capitalized(who),
                printable(error)
            ),
        )
        .explain(format!(
            "The first try never reached our TLS stack: no ClientHello that could be {who}'s \
             arrived while it waited. The retry did, and the test went on over it. A network \
             that changed under {who} (a VPN reconnecting, Wi-Fi roaming) does this; so does a \
             firewall or proxy that drops some connections."
        ))
        .fix("If HTTPS fails now and then from this network, run the test again when it does.")
    } else {
        Finding::new(
            "run.https-failed",
            Severity::Error,
            format!(
                "{}'s HTTPS request failed ({}); no ClientHello from it reached us",
                capitalized(who),
                printable(error)
            ),
        )
        .explain(format!(
            "{} could not complete an HTTPS request to us, and while it waited no ClientHello \
             that could be its own reached our TLS port. Something between it and us stops the \
             connection before TLS: a firewall blocking TCP port 443, a proxy refusing or \
             holding the connection, DNS sending this name somewhere else, or a path that drops \
             the connection's first full-size packet (then an attempt would show here once it \
             is stuck long enough).",
            capitalized(who)
        ))
        .fix("From the same machine: curl -v https://THIS-HOST/ and check which address it connects to and where it stops.")
        .fix("Ask the network team whether TCP port 443 to this server is allowed and whether a proxy is in the way.")
    };
    Some(
        client
            .failed
            .iter()
            .fold(f, |f, t| f.evidence("HTTPS request", printable(&t.error))),
    )
}

/// The run's requests came through a proxy: what was and was not tested.
pub fn through_proxy(proxy: &ProxyUse) -> Finding {
    let f = Finding::new(
        "run.through-proxy",
        Severity::Info,
        format!(
            "This test ran through your proxy ({}): the path tested is the proxy's to us",
            proxy.name
        ),
    )
    .explain(
        "Your requests reached us through a forwarding proxy, so the TCP connections we \
         measured (their SYN, packet sizes and TCP_INFO) were the proxy's, not your \
         computer's. The transfers crossed your own path to the proxy too, but nothing here \
         shows its packet sizes; a test without the proxy (where your network allows it) \
         tests your computer's own path.",
    );
    proxy
        .evidence
        .iter()
        .fold(f, |f, e| f.evidence("how we know", printable(e)))
}

fn capitalized(who: &str) -> String {
    let mut chars = who.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::ProxyHeader;

    #[test]
    fn names_squid_from_its_via_header() {
        let facts = RequestFacts {
            user_agent: None,
            http_version: "HTTP/1.1".into(),
            proxy_headers: vec![ProxyHeader {
                name: "via".into(),
                value: "1.1 proxy.example (squid/5.7)".into(),
            }],
        };
        let proxy = ProxyUse::from_request(&facts).unwrap();
        assert_eq!(proxy.name, "squid/5.7");
        let plain = RequestFacts {
            proxy_headers: vec![ProxyHeader {
                name: "via".into(),
                value: "1.1 gateway".into(),
            }],
            ..facts
        };
        assert_eq!(ProxyUse::from_request(&plain).unwrap().name, "gateway");
    }

    #[test]
    fn a_failed_request_is_never_nothing() {
        let client = ClientSide {
            who: "your browser",
            failed: vec![],
            request_failed: Some("timeout".into()),
            recovered: false,
            proxy: None,
        };
        let f = https_failed(&client, false).unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f
            .title
            .starts_with("Your browser's HTTPS request failed (timeout)"));
        assert!(https_failed(&client, true).is_none());
        let recovered = ClientSide {
            recovered: true,
            ..client
        };
        assert_eq!(
            https_failed(&recovered, false).unwrap().severity,
            Severity::Warning
        );
    }
}
