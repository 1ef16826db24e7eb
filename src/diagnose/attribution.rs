//! Whose attempts are whose. A verdict is about the client that ran the test,
//! not about its address: behind NAT, hundreds of machines and every tool the
//! customer tried a minute ago share one address, and another client's
//! failure is context, never this run's cause.
//!
//! A run owns, in order of proof:
//! 1. the connections that carried its requests (every request of the page
//!    and of check.sh names the run: `?run=`, [`crate::attempt::RunTag`]);
//! 2. the connections whose ClientHello named it (check.sh's ClientHello
//!    size ladder offers ALPN `tlsdiag-<run>`);
//! 3. connections that carried no request (stuck, failed), when evidence ties
//!    them to the run, all of it shown: they began while one of the run's own
//!    HTTPS requests was waiting and then failed, and what arrived fits the
//!    run's client. A parsed ClientHello fits when its JA4 is one the run's
//!    own connections sent or, with none to compare, when it has no trait the
//!    client the User-Agent names could not send (`client_traits`); a
//!    ClientHello that never arrived whole fits when its SYN is the one the
//!    run's own connections came with (TTL, MSS, window scale, options).
//!
//! Everything else from the address is another client's, listed apart. A
//! run whose own HTTPS worked takes nothing by evidence: nothing of it failed
//! that another connection could explain. The rules are in
//! `docs/findings.md#whose-verdict-it-is`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{client_traits, user_agent};
use crate::attempt::TlsAttempt;
use crate::tcp::SynInfo;

/// One of the run's own HTTPS requests that failed, on the server's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedTry {
    pub from: SystemTime,
    pub to: SystemTime,
    /// What the client saw: `timeout`, `failed`, curl's words.
    pub error: String,
}

/// What the run's client told us about itself, and what we saw of it.
#[derive(Debug, Clone, Copy)]
pub struct RunClient<'a> {
    pub run: &'a str,
    /// The run's HTTPS requests that failed.
    pub failed: &'a [FailedTry],
    /// The User-Agent the run's requests named.
    pub user_agent: Option<&'a str>,
    /// The SYN of the connection that posted the results: the same machine's.
    pub syn: Option<&'a SynInfo>,
}

/// Why an attempt is the run's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Tie {
    /// A request on the connection carried the run's id.
    Request,
    /// Its ClientHello named the run (check.sh's ClientHello size ladder).
    HelloLadder,
    /// It carried no request; what ties it to the run, in sentences.
    Evidence { reasons: Vec<String> },
}

impl Tie {
    /// The reason in one line, for the page and the text.
    pub fn describe(&self) -> String {
        match self {
            Tie::Request => "it carried this run's own request".to_owned(),
            Tie::HelloLadder => {
                "its ClientHello named this run (check.sh's size ladder)".to_owned()
            }
            Tie::Evidence { reasons } => reasons.join("; "),
        }
    }
}

/// The address's attempts, split.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    /// The run's own attempts, newest first, each with why it is the run's.
    pub own: Vec<(Arc<TlsAttempt>, Tie)>,
    /// Other clients' attempts at the address, newest first.
    pub others: Vec<Arc<TlsAttempt>>,
}

impl Attribution {
    /// The run's own attempts alone, for the diagnosis.
    pub fn own_attempts(&self) -> Vec<Arc<TlsAttempt>> {
        self.own.iter().map(|(a, _)| a.clone()).collect()
    }
}

/// How early before a failed try's start a connection of it may begin: the
/// client's clock and ours are compared through durations it measured, and
/// a post's own travel time shifts them by up to a round trip.
const BEFORE_TRY: Duration = Duration::from_millis(1500);
/// How late after the try gave up: a retry's connection can be opened as the
/// first one is abandoned.
const AFTER_TRY: Duration = Duration::from_millis(1000);

/// Splits `attempts` (the address's, newest first) into the run's own and
/// other clients'.
pub fn attribute(attempts: &[Arc<TlsAttempt>], client: &RunClient<'_>) -> Attribution {
    let mut own = Vec::new();
    let mut others = Vec::new();
    let mut undecided = Vec::new();
    for a in attempts {
        match a.run_id() {
            Some(run) if run == client.run => {
                let tie = match a.run.get() {
                    Some(_) => Tie::Request,
                    None => Tie::HelloLadder,
                };
                own.push((a.clone(), tie));
            }
            Some(_) => others.push(a.clone()),
            // A connection that worked explains no failure; and a run none
            // of whose HTTPS failed has nothing to explain.
            None if a.succeeded() || client.failed.is_empty() => others.push(a.clone()),
            None => undecided.push(a.clone()),
        }
    }
    let tied: Vec<Arc<TlsAttempt>> = own.iter().map(|(a, _)| a.clone()).collect();
    let ja4s: Vec<&str> = tied
        .iter()
        .filter_map(|a| a.fingerprints())
        .map(|f| f.ja4.as_str())
        .collect();
    let syns: Vec<&SynInfo> = tied
        .iter()
        .filter_map(|a| a.syn.as_deref())
        .chain(client.syn)
        .collect();
    for a in undecided {
        match evidence(&a, client, &ja4s, &syns) {
            Some(reasons) => own.push((a, Tie::Evidence { reasons })),
            None => others.push(a),
        }
    }
    own.sort_by_key(|(a, _)| std::cmp::Reverse(a.started_at));
    others.sort_by_key(|a| std::cmp::Reverse(a.started_at));
    Attribution { own, others }
}

/// The reasons `a` is the run's, or `None` when the evidence does not hold.
fn evidence(
    a: &TlsAttempt,
    client: &RunClient<'_>,
    ja4s: &[&str],
    syns: &[&SynInfo],
) -> Option<Vec<String>> {
    let during = client
        .failed
        .iter()
        .find(|t| a.started_at + BEFORE_TRY >= t.from && a.started_at <= t.to + AFTER_TRY)?;
    let mut reasons = vec![format!(
        "it began while this run's own HTTPS request was waiting, and that request failed ({})",
        during.error
    )];
    match hello_fit(a, client, ja4s) {
        Some(Ok(reason)) => reasons.push(reason),
        // What arrived is another client's hello.
        Some(Err(())) => return None,
        None => reasons.push(syn_fit(a, syns)?),
    }
    Some(reasons)
}

/// Whether the parsed ClientHello is one the run's client sends: `None`
/// when there is no hello, or nothing to hold it against.
fn hello_fit(a: &TlsAttempt, client: &RunClient<'_>, ja4s: &[&str]) -> Option<Result<String, ()>> {
    let hello = a.client_hello.as_ref()?;
    let ja4 = &a.fingerprints()?.ja4;
    if ja4s.contains(&ja4.as_str()) {
        return Some(Ok(format!(
            "its ClientHello is the one this run's own connections sent (JA4 {ja4})"
        )));
    }
    // A run can use two TLS clients (check.sh: curl for its requests,
    // openssl for its ClientHello ladder), and the one that failed may have
    // no completed connection to compare with: its User-Agent decides.
    let claim = client.user_agent.and_then(user_agent::claim);
    let Some(claim) = claim else {
        return (!ja4s.is_empty()).then_some(Err(()));
    };
    let certain = client_traits::mismatches(&claim, hello, None)
        .into_iter()
        .any(|m| m.certain);
    Some(if certain {
        Err(())
    } else {
        Ok(format!(
            "its ClientHello has nothing {claim} could not send (the User-Agent of this run's requests)"
        ))
    })
}

/// Whether `a`'s SYN is the one the run's own connections came with.
fn syn_fit(a: &TlsAttempt, syns: &[&SynInfo]) -> Option<String> {
    let syn = a.syn.as_deref()?;
    let same = |s: &&&SynInfo| {
        s.ttl == syn.ttl
            && s.mss == syn.mss
            && s.window_scale == syn.window_scale
            && s.options
                .iter()
                .map(|o| o.kind)
                .eq(syn.options.iter().map(|o| o.kind))
    };
    syns.iter().find(same)?;
    let options: Vec<&str> = syn.options.iter().map(|o| &*o.name).collect();
    Some(format!(
        "no ClientHello arrived whole to compare, but its SYN is the one this run's own \
         connections came with (TTL {}, MSS {}, window scale {}, options {})",
        syn.ttl,
        syn.mss.map_or_else(|| "none".to_owned(), |m| m.to_string()),
        syn.window_scale
            .map_or_else(|| "none".to_owned(), |w| w.to_string()),
        options.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{Outcome, StallEnd};
    use crate::diagnose::fixture;
    use std::net::SocketAddr;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn attempt(id: u64, started: SystemTime, outcome: Outcome) -> TlsAttempt {
        let peer = SocketAddr::from(([198, 18, 1, 1], 40000 + id as u16));
        let mut a = TlsAttempt::fixture(id, peer);
        a.started_at = started;
        a.outcome = outcome;
        a
    }

    fn stuck() -> Outcome {
        Outcome::HelloIncomplete {
            received: 1460,
            expected: Some(1981),
            ended: StallEnd::Waiting,
            out_of_order_segments: 0,
        }
    }

    fn syn(ttl: u8, mss: u16) -> SynInfo {
        let mut s = crate::tcp::syn::parse(&crate::tcp::syn::linux_syn_v4()).unwrap();
        s.ttl = ttl;
        s.mss = Some(mss);
        s
    }

    const RUN: &str = "ownrun0001";

    #[test]
    fn a_run_whose_https_worked_takes_nothing_by_evidence() {
        let mut tagged = attempt(1, at(10), Outcome::Completed);
        tagged.client_hello = Some(fixture("chromium_pq"));
        tagged.run.learn(RUN);
        let neighbour = attempt(2, at(11), stuck());
        let all = [Arc::new(neighbour), Arc::new(tagged)];
        let split = attribute(
            &all,
            &RunClient {
                run: RUN,
                failed: &[],
                user_agent: None,
                syn: None,
            },
        );
        assert_eq!(split.own.len(), 1);
        assert_eq!(split.own[0].1, Tie::Request);
        assert_eq!(split.others.len(), 1);
        assert_eq!(split.others[0].id, 2);
    }

    #[test]
    fn another_runs_connection_is_never_this_runs() {
        let other = attempt(3, at(10), stuck());
        other.run.learn("someoneelse1");
        let failed = [FailedTry {
            from: at(9),
            to: at(15),
            error: "timeout".into(),
        }];
        let split = attribute(
            &[Arc::new(other)],
            &RunClient {
                run: RUN,
                failed: &failed,
                user_agent: None,
                syn: None,
            },
        );
        assert!(split.own.is_empty());
    }

    #[test]
    fn a_stuck_hello_during_the_failed_try_with_the_runs_syn_is_the_runs() {
        let failed = [FailedTry {
            from: at(10),
            to: at(16),
            error: "timeout".into(),
        }];
        let posting = syn(64, 1460);
        let mut mine = attempt(4, at(11), stuck());
        mine.syn = Some(Arc::new(syn(64, 1460)));
        // Same address, other machine: another TTL.
        let mut theirs = attempt(5, at(11), stuck());
        theirs.syn = Some(Arc::new(syn(127, 1460)));
        // Same machine, but long before the run's request.
        let mut earlier = attempt(6, at(2), stuck());
        earlier.syn = Some(Arc::new(syn(64, 1460)));
        let split = attribute(
            &[Arc::new(mine), Arc::new(theirs), Arc::new(earlier)],
            &RunClient {
                run: RUN,
                failed: &failed,
                user_agent: None,
                syn: Some(&posting),
            },
        );
        let own: Vec<u64> = split.own.iter().map(|(a, _)| a.id).collect();
        assert_eq!(own, [4]);
        let Tie::Evidence { reasons } = &split.own[0].1 else {
            panic!("{:?}", split.own[0].1)
        };
        assert!(reasons[0].contains("failed (timeout)"), "{reasons:?}");
        assert!(reasons[1].contains("TTL 64, MSS 1460"), "{reasons:?}");
        assert_eq!(split.others.len(), 2);
    }

    #[test]
    fn a_hello_the_browser_could_not_send_is_anothers() {
        let failed = [FailedTry {
            from: at(10),
            to: at(16),
            error: "failed".into(),
        }];
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/131.0.0.0 Safari/537.36";
        let mut openssl = attempt(7, at(11), Outcome::Completed);
        openssl.outcome = Outcome::NoData {
            ended: StallEnd::Timeout,
        };
        openssl.client_hello = Some(fixture("openssl_s_client_tls13_default"));
        let mut browser = attempt(
            8,
            at(12),
            Outcome::NoData {
                ended: StallEnd::Timeout,
            },
        );
        browser.client_hello = Some(fixture("chromium_pq"));
        let split = attribute(
            &[Arc::new(browser), Arc::new(openssl)],
            &RunClient {
                run: RUN,
                failed: &failed,
                user_agent: Some(chrome),
                syn: None,
            },
        );
        let own: Vec<u64> = split.own.iter().map(|(a, _)| a.id).collect();
        assert_eq!(own, [8]);
        assert_eq!(split.others[0].id, 7);
    }

    #[test]
    fn check_sh_s_stalled_curl_is_its_own_though_only_openssl_completed() {
        // The certificate check (curl) stalled; only the ClientHello ladder
        // (openssl) completed, tagged by its ALPN.
        let failed = [FailedTry {
            from: at(10),
            to: at(18),
            error: "timeout".into(),
        }];
        let mut ladder = attempt(12, at(30), Outcome::Completed);
        ladder.client_hello = Some(fixture("openssl_s_client_tls13_default"));
        ladder.run.learn(RUN);
        let mut curl = attempt(13, at(10), Outcome::HandshakeTimeout);
        curl.client_hello = Some(fixture("curl_openssl3"));
        let split = attribute(
            &[Arc::new(ladder), Arc::new(curl)],
            &RunClient {
                run: RUN,
                failed: &failed,
                user_agent: Some("curl/8.14.1"),
                syn: None,
            },
        );
        let own: Vec<u64> = split.own.iter().map(|(a, _)| a.id).collect();
        assert_eq!(own, [12, 13]);
        let Tie::Evidence { reasons } = &split.own[1].1 else {
            panic!()
        };
        assert!(reasons[1].contains("curl could not send"), "{reasons:?}");
    }

    #[test]
    fn a_hello_with_another_ja4_than_the_runs_own_is_anothers() {
        let failed = [FailedTry {
            from: at(10),
            to: at(16),
            error: "unknown_ca".into(),
        }];
        let mut verified = attempt(9, at(17), Outcome::Completed);
        verified.client_hello = Some(fixture("curl_openssl3"));
        verified.run.learn(RUN);
        let mut same = attempt(
            10,
            at(10),
            Outcome::NoData {
                ended: StallEnd::Timeout,
            },
        );
        same.client_hello = Some(fixture("curl_openssl3"));
        let mut other = attempt(
            11,
            at(10),
            Outcome::NoData {
                ended: StallEnd::Timeout,
            },
        );
        other.client_hello = Some(fixture("chromium_pq"));
        let split = attribute(
            &[Arc::new(verified), Arc::new(same), Arc::new(other)],
            &RunClient {
                run: RUN,
                failed: &failed,
                user_agent: None,
                syn: None,
            },
        );
        let own: Vec<u64> = split.own.iter().map(|(a, _)| a.id).collect();
        assert_eq!(own, [9, 10]);
        let Tie::Evidence { reasons } = &split.own[1].1 else {
            panic!()
        };
        assert!(reasons[1].contains("JA4"), "{reasons:?}");
    }
}
