//! A re-run gives the same verdict (issue 25), in the namespace lab
//! (`common::netns`).
//!
//! The seed's network: a symmetric 1,400-byte link between the routers. The
//! client's edge (r1) sends no ICMP "fragmentation needed" / "packet too big"
//! toward the client and drops every such message it forwards there, so the
//! client's full-size packets toward the server vanish (the client→server
//! black hole). The server-side router's (r2's) ICMP does reach the server:
//! the first run's downloads teach the server's kernel a path MTU of 1,400
//! toward the client, cached for ten minutes, and every later SYN-ACK would
//! announce MSS 1,360 (IPv6: 1,340) instead of 1,460 (1,440). The client's
//! packets would then fit, and the next run would pass on shrunk connections.
//!
//! The server forgets that path MTU when a run starts (`/api/v1/probe/config
//! ?run=ID`; check.sh asks again right before its ClientHello ladder, which
//! its own transfers would otherwise have shrunk), so every run's own
//! connections are announced the full MSS and find the black hole again.
//! Since the forget before the ladder leaves nothing cached after a check.sh
//! run, and a page whose ClientHello never arrives downloads nothing, the
//! test has the client download 64 KiB over HTTPS before each re-run whose
//! predecessor left nothing cached (the customer's other traffic with us):
//! `ip route get` on the server must show the path MTU of 1,400 before every
//! re-run, so every re-run needs the forget. Without forgetting
//! (`--no-forget-path-mtu`) the verdict says why the run could not test
//! full-size packets and shows the last conclusive verdict for the address.
//!
//! A ClientHello ladder step is "too big for the link" when, in one segment
//! with its IP and TCP headers, it exceeds 1,400 bytes (the 1,400-byte step
//! included): on a full-MSS connection it meets the black hole, so a plain
//! "ok" could not have failed.
//!
//! The rescue case: the client's edge passes forwarded ICMP, so tlsdiag's own
//! "too big" (MTU 1,280) rescues Chromium's stuck ClientHello, and the
//! client's kernel then remembers 1,280 toward us for ten minutes: its SYNs
//! announce MSS 1,240. Later runs must keep the cause and say what the
//! client remembers. A network that clamps every SYN's MSS from the start
//! (the seed's fix) must still read clear.
//!
//! Each test builds a lab of its own (tags `ua`..`ue`), so they run at once;
//! Chromium runs one at a time across them. Every test runs all its steps and
//! then fails with every broken expectation at once, after printing what each
//! run said (verdict, findings, our MSS, the kernels' cached path MTUs).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::browser::{self, between, unescape};
use common::netns::{self, Lab, LabSpec, HTTP_PORT, NARROW_MTU};
use serde_json::Value;

/// The bar for the page: a verdict within 30 s of opening the URL.
const VERDICT_WITHIN: Duration = Duration::from_secs(30);

/// Findings that name the black hole from the client toward the server when
/// nothing rescues the client's large packets.
const BLACK_HOLE_UP: &[&str] = &[
    "path.icmp-filtered-toward-you",
    "path.black-hole-up",
    "tls.hello-incomplete",
    "path.hello-size-limit",
];

/// One Chromium at a time across this binary's tests (2 cores).
static CHROMIUM: Mutex<()> = Mutex::new(());

/// The seed's network: the client→server black hole at [`NARROW_MTU`], r1
/// silent toward the client and dropping forwarded ICMP too; r2's ICMP
/// reaches the server.
fn seed_lab(v6: bool) -> LabSpec {
    LabSpec {
        ipv6: v6,
        drop_forwarded_icmp_toward_client: true,
        ..LabSpec::client_to_server_black_hole()
    }
}

/// The MSS of a full-size packet on the lab's 1,500-byte edges.
fn full_mss(v6: bool) -> u64 {
    if v6 {
        1440
    } else {
        1460
    }
}

#[test]
fn rerun_v4_names_the_black_hole_every_time() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    names_the_black_hole_every_time(
        "ua",
        false,
        &[
            Agent::CheckSh,
            Agent::CheckSh,
            Agent::CheckSh,
            Agent::Page,
            Agent::CheckSh,
        ],
    );
}

#[test]
fn rerun_v6_names_the_black_hole_every_time() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    names_the_black_hole_every_time("ub", true, &[Agent::CheckSh, Agent::CheckSh, Agent::Page]);
}

/// Runs `agents` one after the other from the same client in the seed's lab;
/// every verdict must name the client→server black hole, on connections
/// announced the full MSS, although the server's kernel had learned 1,400
/// toward the client before each re-run.
fn names_the_black_hole_every_time(tag: &str, v6: bool, agents: &[Agent]) {
    let began = Instant::now();
    let mut lab = Lab::build(tag, &seed_lab(v6));
    lab.start_server();
    let mut checks = Checks::default();
    let mut runs: Vec<Run> = Vec::new();
    let full = full_mss(v6);

    checks.check(server_pmtu(&lab).is_none(), || {
        format!(
            "a fresh server has a cached path MTU: {}",
            server_route(&lab)
        )
    });
    for (i, &agent) in agents.iter().enumerate() {
        let n = i + 1;
        if n > 1 && server_pmtu(&lab) != Some(NARROW_MTU) {
            // The run before left nothing cached (a page whose ClientHello
            // never arrived moved no data toward the client): the client's
            // other traffic with us teaches the server again.
            let taught = teach_server(&lab);
            eprintln!("[{tag}] before run {n}: nothing cached; a 64 KiB download taught the server: {taught}");
        }
        let run = Run::new(&lab, n, agent, tag);
        let name = run.name();
        if n > 1 {
            // The forget is needed: the earlier runs taught our kernel.
            checks.check(run.server_pmtu_before == Some(NARROW_MTU), || {
                format!(
                    "{name}: before it, the server had not cached {NARROW_MTU} toward the client \
                     (so this run proves no forgetting): {}",
                    run.server_route_before
                )
            });
        }
        black_hole_verdict(&mut checks, &run);
        if let Some(first) = runs.first() {
            if agent == Agent::CheckSh && run.headline != first.headline {
                // Not an expectation: our ICMP test runs at most once a
                // minute per address, so a quick re-run may not prove the
                // firewall again. Worth seeing, though.
                eprintln!(
                    "[{tag}] NOTE {name}'s headline differs from run 1's:\n  {:?}\n  {:?}",
                    run.headline, first.headline
                );
            }
        }
        if agent == Agent::CheckSh {
            // Its downloads cross the 1,400-byte link and the server side's
            // router tells our kernel so: evidence about the path toward
            // the client, named with its MTU.
            let heard = run.finding("path.icmp-toward-you-reached-us");
            checks.check(
                heard.is_some_and(|f| {
                    f["title"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("must stay under 1,400 bytes"))
                }),
                || {
                    format!(
                        "{name}: no path.icmp-toward-you-reached-us naming 1,400 bytes: {:?}",
                        run.ids()
                    )
                },
            );
            // And which router said it: the server side's, on the lab's
            // server link (r2's address toward the server).
            let router = if v6 {
                "from the router 2001:2:0:3:"
            } else {
                "from the router 198.18.3."
            };
            checks.check(
                heard.is_some_and(|f| {
                    f["evidence"].as_array().is_some_and(|e| {
                        e.iter()
                            .any(|e| e["value"].as_str().is_some_and(|v| v.starts_with(router)))
                    })
                }),
                || format!("{name}: the finding names no router ({router}…): {heard:?}"),
            );
            let hellos = run.hello_lines();
            checks.check(
                hellos
                    .iter()
                    .any(|(bytes, _)| too_big_for_the_link(*bytes, v6)),
                || {
                    format!(
                        "{name}: check.sh ran no ClientHello too big for the 1,400-byte link:\n{}",
                        run.text
                    )
                },
            );
            // On full-MSS connections every ClientHello too big for the
            // link meets the black hole: "ok" could not be true, and
            // "passed, but on a connection limited to ..." means the
            // server did not forget before the ladder.
            for (bytes, said) in &hellos {
                checks.check(
                    !too_big_for_the_link(*bytes, v6) || said.starts_with("FAILED"),
                    || {
                        format!(
                        "{name}: check.sh says \"hello {bytes} B  {said}\" across the black hole"
                    )
                    },
                );
            }
        }
        // Every own connection was announced the full MSS: the server had
        // forgotten what it learned before the run (run 1 had nothing to
        // forget).
        let own = run.own_attempts();
        checks.check(!own.is_empty(), || {
            format!("{name}: the run owns no attempt")
        });
        let listed = |a: &&Value| {
            format!(
                "#{} {} ({})",
                a["id"],
                a["our_mss"],
                a["summary"].as_str().unwrap_or("?")
            )
        };
        let shrunk: Vec<String> = own
            .iter()
            .filter(|a| a["our_mss"]["announced"].as_u64() != Some(full))
            .map(listed)
            .collect();
        checks.check(shrunk.is_empty(), || {
            format!(
                "{name}: {} of {} own attempts were not announced the full MSS {full}:\n    {}",
                shrunk.len(),
                own.len(),
                shrunk.join("\n    ")
            )
        });
        // And none says a path MTU our kernel remembered shrank it (`full`
        // and `cached_path_mtu` are looked up only when we announced less
        // than the client offered: docs/api.md).
        let remembered: Vec<String> = own
            .iter()
            .filter(|a| !a["our_mss"]["cached_path_mtu"].is_null())
            .map(listed)
            .collect();
        checks.check(remembered.is_empty(), || {
            format!(
                "{name}: {} of {} own attempts were shrunk by a remembered path MTU:\n    {}",
                remembered.len(),
                own.len(),
                remembered.join("\n    ")
            )
        });
        runs.push(run);
    }
    checks.finish(&lab, &runs, began);
}

#[test]
fn rerun_without_forgetting_says_why_and_keeps_the_earlier_verdict() {
    if !netns::available() || !common::require_tool("openssl") {
        return;
    }
    let began = Instant::now();
    let mut lab = Lab::build("uc", &seed_lab(false));
    lab.start_server_with(&["--no-forget-path-mtu"]);
    let mut checks = Checks::default();
    let first = Run::new(&lab, 1, Agent::CheckSh, "uc");
    black_hole_verdict(&mut checks, &first);
    let second = Run::new(&lab, 2, Agent::CheckSh, "uc");
    checks.check(second.server_pmtu_before == Some(NARROW_MTU), || {
        format!(
            "run 2: the server had not cached {NARROW_MTU} toward the client before it: {}",
            second.server_route_before
        )
    });

    // Its connections were shrunk, and the report says so.
    let shrunk: Vec<&Value> = second
        .own_attempts()
        .into_iter()
        .filter(|a| {
            let mss = &a["our_mss"];
            mss["announced"].as_u64() == Some(1360)
                && mss["full"].as_u64() == Some(1460)
                && mss["cached_path_mtu"].as_u64() == Some(u64::from(NARROW_MTU))
        })
        .collect();
    checks.check(!shrunk.is_empty(), || {
        "run 2: no own attempt shows our_mss {announced: 1360, full: 1460, cached_path_mtu: 1400}"
            .to_owned()
    });
    match second.finding("path.our-mss-shrunk") {
        None => checks.fail("run 2: no finding path.our-mss-shrunk".to_owned()),
        Some(f) => {
            let text = f.to_string().to_lowercase();
            for words in [
                "our server already knew packets toward you must stay under 1,400 bytes",
                "this run could not test your full-size packets",
                // Exactly why it could not forget.
                "--no-forget-path-mtu",
            ] {
                checks.check(text.contains(words), || {
                    format!("run 2: path.our-mss-shrunk does not say {words:?}: {f:#}")
                });
            }
        }
    }
    checks.check(second.status != "clear", || {
        format!("run 2 reads clear: {:?}", second.headline)
    });
    checks.check(
        !second.headline.starts_with("Inconclusive: nothing failed"),
        || format!("run 2 is a bare inconclusive: {:?}", second.headline),
    );
    checks.check(!second.headline.contains("No problem"), || {
        format!("run 2: {:?}", second.headline)
    });
    // The earlier verdict, its time and its report link.
    let all = second.report.to_string();
    checks.check(all.contains(&first.id), || {
        format!("run 2's report never links run 1's report {}", first.id)
    });
    checks.check(second.text.contains(&first.id), || {
        format!(
            "check.sh's run 2 output never links run 1's report {}",
            first.id
        )
    });
    // Searched as it stands in the JSON (its quotes escaped).
    let escaped = serde_json::to_string(&first.headline).unwrap();
    let escaped = escaped.trim_matches('"');
    checks.check(all.contains(escaped), || {
        format!(
            "run 2's report never names run 1's verdict {:?}",
            first.headline
        )
    });
    // Run 1's time: its report's creation, to the second (HH:MM:SS).
    let at = first.report["created_at"]
        .as_str()
        .and_then(|t| t.get(11..19))
        .unwrap_or_else(|| panic!("run 1's report has no created_at"))
        .to_owned();
    checks.check(all.contains(&at), || {
        format!("run 2's report never names run 1's time {at}")
    });
    checks.check(second.text.contains(&at), || {
        format!("check.sh's run 2 output never names run 1's time {at}")
    });
    // The ClientHellos that passed on shrunk connections are not "ok"
    // (and the ladder did pass some: the connections were shrunk).
    let hellos = second.hello_lines();
    for (bytes, said) in &hellos {
        checks.check(
            !too_big_for_the_link(*bytes, false) || !said.starts_with("ok"),
            || {
                format!(
                    "run 2: check.sh says a plain \"hello {bytes} B  {said}\" on a connection \
                 limited to {NARROW_MTU}-byte packets: a {bytes}-byte ClientHello in one segment \
                 is a {}-byte packet, which could not have crossed the link",
                    bytes + 40
                )
            },
        );
    }
    checks.finish(&lab, &[first, second], began);
}

#[test]
fn rescue_case_keeps_the_cause_while_the_client_remembers() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    let began = Instant::now();
    // The client's edge passes forwarded ICMP: only r1's own is missing.
    let mut lab = Lab::build("ud", &LabSpec::client_to_server_black_hole());
    lab.start_server();
    let mut checks = Checks::default();
    let mut runs: Vec<Run> = Vec::new();
    // (agent, start at least this long after the first run's start)
    let plan = [
        (Agent::Page, 0),
        (Agent::Page, 60),
        (Agent::CheckSh, 120),
        (Agent::CheckSh, 190),
    ];
    let mut t0 = None;
    for (i, (agent, at)) in plan.into_iter().enumerate() {
        let n = i + 1;
        if let Some(t0) = t0 {
            let due: Instant = t0 + Duration::from_secs(at);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        } else {
            t0 = Some(Instant::now());
        }
        let run = Run::new(&lab, n, agent, "ud");
        let name = run.name();
        checks.check(run.status == "problem", || {
            format!("{name}: status {:?}: {:?}", run.status, run.headline)
        });
        checks.check(run.ids().contains(&"path.router-icmp-missing"), || {
            format!(
                "{name}: the cause path.router-icmp-missing is gone: {:?}",
                run.ids()
            )
        });
        checks.check(
            !run.headline.contains("No problem") && !run.headline.starts_with("Inconclusive"),
            || format!("{name}: {:?}", run.headline),
        );
        if n == 1 {
            // Our ICMP rescued the page, and taught the client.
            let after = client_route(&lab);
            checks.check(client_pmtu(&lab) == Some(1280), || {
                format!("run 1 did not teach the client 1,280 toward us: {after}")
            });
        } else {
            checks.check(run.client_pmtu_before == Some(1280), || {
                format!(
                    "{name}: the client did not remember 1,280 toward us before it: {}",
                    run.client_route_before
                )
            });
            match run.finding("path.client-remembers-our-icmp") {
                None => checks.fail(format!(
                    "{name}: no path.client-remembers-our-icmp: {:?}",
                    run.ids()
                )),
                Some(f) => {
                    let text = f.to_string().to_lowercase();
                    let said = text
                        .split("your computer remembers, from our message at ")
                        .nth(1)
                        .and_then(|rest| rest.get(..5));
                    let times = clock_times(runs[0].started, runs[0].ended);
                    checks.check(said.is_some_and(|t| times.iter().any(|w| w == t)), || {
                        format!(
                            "{name}: path.client-remembers-our-icmp names no time of run 1's \
                             message (one of {times:?}): {f:#}"
                        )
                    });
                    checks.check(
                        text.contains("that packets to us must stay under 1,280 bytes"),
                        || format!("{name}: path.client-remembers-our-icmp: {f:#}"),
                    );
                }
            }
            // Its SYNs say so.
            let own = run.own_attempts();
            checks.check(!own.is_empty(), || {
                format!("{name}: the run owns no attempt")
            });
            let wrong = run.syn_mss_other_than(1240);
            checks.check(wrong.is_empty(), || {
                format!("{name}: attempts whose SYN MSS is not 1,240: {wrong:?}")
            });
        }
        runs.push(run);
    }
    let spread = runs
        .last()
        .unwrap()
        .started
        .duration_since(runs[0].started)
        .unwrap();
    checks.check(spread > Duration::from_secs(180), || {
        format!("the last run began only {spread:?} after the first")
    });
    checks.finish(&lab, &runs, began);
}

#[test]
fn mss_clamp_from_the_first_syn_reads_clear() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    let began = Instant::now();
    let mut lab = Lab::build("ue", &seed_lab(false));
    // The seed's fix: the tunnel router clamps every SYN (and SYN-ACK) to
    // what the 1,400-byte link carries, from the very first connection.
    let clamp = lab.sh(
        &lab.r1,
        "iptables -w -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1360",
        10,
    );
    assert!(clamp.ok(), "the clamp rule: {clamp:?}");
    lab.start_server();
    let mut checks = Checks::default();
    let mut runs = Vec::new();
    for (i, agent) in [Agent::CheckSh, Agent::Page, Agent::CheckSh]
        .into_iter()
        .enumerate()
    {
        let run = Run::new(&lab, i + 1, agent, "ue");
        let name = run.name();
        checks.check(run.status == "clear", || {
            format!(
                "{name}: status {:?}: {:?} {:?}",
                run.status,
                run.headline,
                run.ids()
            )
        });
        checks.check(run.headline.starts_with("No problem found"), || {
            format!("{name}: {:?}", run.headline)
        });
        for id in ["path.client-remembers-our-icmp", "path.our-mss-shrunk"] {
            checks.check(!run.ids().contains(&id), || {
                format!("{name}: {id} under a clamp")
            });
        }
        let alarms = run.alarms();
        checks.check(alarms.is_empty(), || format!("{name}: alarms {alarms:?}"));
        let own = run.own_attempts();
        checks.check(!own.is_empty(), || {
            format!("{name}: the run owns no attempt")
        });
        let wrong = run.syn_mss_other_than(1360);
        checks.check(wrong.is_empty(), || {
            format!("{name}: attempts whose SYN MSS is not the clamp's 1,360: {wrong:?}")
        });
        runs.push(run);
    }
    let clamped = lab.sh(&lab.r1, "iptables -w -t mangle -L FORWARD -v -n -x", 10);
    let packets: u64 = clamped
        .stdout
        .lines()
        .filter(|l| l.contains("TCPMSS"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    checks.check(packets > 0, || {
        format!("the clamp never matched: {clamped:?}")
    });
    checks.finish(&lab, &runs, began);
}

/// The verdict of a run in the seed's lab: a problem, named as the
/// client→server black hole, never "inconclusive" nor "no problem".
fn black_hole_verdict(checks: &mut Checks, run: &Run) {
    let name = run.name();
    checks.check(run.status == "problem", || {
        format!("{name}: status {:?}: {:?}", run.status, run.headline)
    });
    checks.check(
        run.ids().iter().any(|id| BLACK_HOLE_UP.contains(id)),
        || {
            format!(
                "{name}: no finding names the black hole toward the server: {:?}",
                run.ids()
            )
        },
    );
    checks.check(
        !run.headline.starts_with("Inconclusive") && !run.headline.contains("No problem"),
        || format!("{name}: {:?}", run.headline),
    );
    // The headline leads with it.
    let leads = run.findings().iter().any(|f| {
        f["id"]
            .as_str()
            .is_some_and(|id| BLACK_HOLE_UP.contains(&id))
            && f["title"]
                .as_str()
                .is_some_and(|t| run.headline.starts_with(t))
    });
    checks.check(leads, || {
        format!(
            "{name}: the headline does not lead with the black hole: {:?}",
            run.headline
        )
    });
}

/// Whether a ClientHello of `bytes` needs a packet larger than the r1–r2
/// link carries when sent in one segment (IP and TCP headers added): on a
/// full-MSS connection it meets the black hole; a pass means our SYN-ACK
/// asked for smaller segments.
fn too_big_for_the_link(bytes: u32, v6: bool) -> bool {
    bytes + if v6 { 60 } else { 40 } > NARROW_MTU
}

// ---------- runs ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    /// `curl -s BASE/check.sh | sh` in the client namespace.
    CheckSh,
    /// Headless Chromium opening the plain-HTTP entry URL.
    Page,
}

/// One run from the client: what it said, the report it saved, and what the
/// two kernels had cached just before it.
struct Run {
    n: usize,
    agent: Agent,
    headline: String,
    status: String,
    /// The saved report, as `/api/v1/reports/{id}` returns it.
    report: Value,
    id: String,
    /// check.sh's whole output; the page's `#probe` attributes.
    text: String,
    started: SystemTime,
    ended: SystemTime,
    took: Duration,
    server_pmtu_before: Option<u32>,
    server_route_before: String,
    client_pmtu_before: Option<u32>,
    client_route_before: String,
    /// The whole attempts (`/api/v1/attempts`, read right after the run) by
    /// id: a saved report's attempts are briefs, without the client's SYN.
    whole: HashMap<u64, Value>,
}

impl Run {
    fn new(lab: &Lab, n: usize, agent: Agent, tag: &str) -> Self {
        let server_route_before = server_route(lab);
        let server_pmtu_before = server_pmtu(lab);
        let client_route_before = client_route(lab);
        let client_pmtu_before = client_pmtu(lab);
        let base = format!("http://{}:{HTTP_PORT}", lab.server_host());
        let case = format!("lab-rerun-{tag}-{n}");
        let _one =
            (agent == Agent::Page).then(|| CHROMIUM.lock().unwrap_or_else(|e| e.into_inner()));
        let started = SystemTime::now();
        let clock = Instant::now();
        let (text, link, page_headline) = match agent {
            Agent::CheckSh => {
                let out = lab.client(
                    &format!("curl -s -g --max-time 10 '{base}/check.sh?case={case}' | sh"),
                    120,
                );
                assert!(
                    out.ok(),
                    "run {n}: check.sh failed: {out:?}\n{}",
                    lab.server_log()
                );
                // This run's own link (a finding may cite an earlier run's).
                let link = out
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("Report link (send it to support): "))
                    .unwrap_or_else(|| panic!("check.sh printed no report link:\n{}", out.stdout))
                    .trim()
                    .to_owned();
                (out.stdout, link, None)
            }
            Agent::Page => {
                let page = browser::run_page(
                    Some(&lab.client),
                    &format!("{base}/?case={case}"),
                    "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
                    &["done", "error"],
                    VERDICT_WITHIN + Duration::from_secs(15),
                    &["--ignore-certificate-errors".to_owned()],
                    Some(&netns::screenshot_path(&case)),
                );
                assert!(
                    page.reached && page.value_text() == "done",
                    "run {n}: the page reached no verdict ({}): {:?}\n{}\n--- server log ---\n{}",
                    page.value_text(),
                    page.navigation_error,
                    page.html,
                    lab.server_log()
                );
                let headline = unescape(
                    between(&page.html, "<h1 class=\"headline-text\">", "</h1>")
                        .unwrap_or_else(|| panic!("no headline on the page:\n{}", page.html)),
                );
                let link = unescape(
                    between(&page.html, "class=\"probe-url\" href=\"", "\"")
                        .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html)),
                );
                let attrs = between(&page.html, "<section id=\"probe\"", ">")
                    .map(unescape)
                    .unwrap_or_default();
                (attrs, link, Some(headline))
            }
        };
        let took = clock.elapsed();
        let ended = SystemTime::now();
        let id = link.rsplit('/').next().unwrap().trim().to_owned();
        assert_eq!(id.len(), 32, "{link}");
        let out = lab.client(
            &format!("curl -s -g --max-time 10 '{base}/api/v1/reports/{id}'"),
            15,
        );
        let report: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("report {id}: {e}: {out:?}"));
        let out = lab.client(
            &format!("curl -s -g --max-time 10 '{base}/api/v1/attempts'"),
            15,
        );
        let listed: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("/api/v1/attempts: {e}: {out:?}"));
        let whole = listed["attempts"]
            .as_array()
            .unwrap_or_else(|| panic!("/api/v1/attempts: {listed:#}"))
            .iter()
            .filter_map(|a| Some((a["id"].as_u64()?, a.clone())))
            .collect();
        let headline = report["verdict"].as_str().unwrap_or_default().to_owned();
        let status = report["status"].as_str().unwrap_or_default().to_owned();
        match (agent, page_headline) {
            (Agent::Page, Some(shown)) => {
                assert_eq!(shown, headline, "run {n}: page and saved report disagree");
                assert!(
                    took <= VERDICT_WITHIN + Duration::from_secs(5),
                    "run {n}: verdict after {took:?}"
                );
            }
            _ => {
                // The words check.sh printed are the saved headline (wrapped).
                let printed = one_line(
                    text.split("Verdict\n-------\n")
                        .nth(1)
                        .and_then(|rest| rest.split("\n\n").next())
                        .unwrap_or_default(),
                );
                assert_eq!(
                    printed,
                    one_line(&headline),
                    "run {n}: check.sh said:\n{text}"
                );
            }
        }
        let run = Self {
            n,
            agent,
            headline,
            status,
            report,
            id,
            text,
            started,
            ended,
            took,
            server_pmtu_before,
            server_route_before,
            client_pmtu_before,
            client_route_before,
            whole,
        };
        eprintln!("[{tag}] {}", run.summary());
        if std::env::var_os("LAB_DUMP").is_some() {
            eprintln!("{}\n{:#}", run.text, run.report);
        }
        run
    }

    fn name(&self) -> String {
        format!("run {} ({})", self.n, self.agent_name())
    }

    fn agent_name(&self) -> &'static str {
        match self.agent {
            Agent::CheckSh => "check.sh",
            Agent::Page => "page",
        }
    }

    fn findings(&self) -> Vec<&Value> {
        self.report["findings"]
            .as_array()
            .map(|all| all.iter().collect())
            .unwrap_or_default()
    }

    fn ids(&self) -> Vec<&str> {
        self.findings()
            .iter()
            .filter_map(|f| f["id"].as_str())
            .collect()
    }

    fn finding(&self, id: &str) -> Option<&Value> {
        self.findings().into_iter().find(|f| f["id"] == id)
    }

    /// Findings above info.
    fn alarms(&self) -> Vec<&str> {
        self.findings()
            .iter()
            .filter(|f| f["severity"] != "info")
            .filter_map(|f| f["id"].as_str())
            .collect()
    }

    /// The attempts tied to the run (`attempts[].attempt`).
    fn own_attempts(&self) -> Vec<&Value> {
        self.report["attempts"]
            .as_array()
            .map(|all| all.iter().map(|t| &t["attempt"]).collect())
            .unwrap_or_default()
    }

    /// The MSS of the client's SYN for one of the run's attempts, as the
    /// server saw it.
    fn syn_mss(&self, attempt: &Value) -> Option<u64> {
        let id = attempt["id"].as_u64()?;
        self.whole.get(&id)?["syn"]["mss"].as_u64()
    }

    /// The run's attempts whose SYN did not announce `mss`: "#id: mss".
    fn syn_mss_other_than(&self, mss: u64) -> Vec<String> {
        self.own_attempts()
            .into_iter()
            .filter(|a| self.syn_mss(a) != Some(mss))
            .map(|a| format!("#{}: {:?}", a["id"], self.syn_mss(a)))
            .collect()
    }

    /// check.sh's ClientHello ladder: `  hello     4000 B  FAILED (no answer)`
    /// as (4000, "FAILED (no answer)").
    fn hello_lines(&self) -> Vec<(u32, String)> {
        if self.agent != Agent::CheckSh {
            return Vec::new();
        }
        self.text
            .lines()
            .filter_map(|line| {
                let rest = line.trim_start().strip_prefix("hello")?;
                let (bytes, said) = rest.trim_start().split_once(" B ")?;
                Some((bytes.trim().parse().ok()?, said.trim().to_owned()))
            })
            .collect()
    }

    fn summary(&self) -> String {
        let attempts: Vec<String> = self
            .own_attempts()
            .iter()
            .map(|a| {
                let mss = &a["our_mss"];
                // The same attempt as /api/v1/attempts listed it just after.
                let whole = a["id"]
                    .as_u64()
                    .and_then(|id| self.whole.get(&id))
                    .map_or("not listed".to_owned(), |w| {
                        format!("{} (ended {})", w["our_mss"], w["outcome"]["ended"])
                    });
                format!(
                    "#{} syn mss {} | our_mss announced {} full {} cached {} (report, ended {}; \
                     listed: {whole}) | {}",
                    a["id"],
                    self.syn_mss(a).map_or("?".to_owned(), |m| m.to_string()),
                    mss["announced"],
                    mss["full"],
                    mss["cached_path_mtu"],
                    a["outcome"]["ended"],
                    a["summary"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let hellos: Vec<String> = self
            .hello_lines()
            .iter()
            .map(|(b, s)| format!("{b}: {s}"))
            .collect();
        format!(
            "{} at {} in {:.1} s: {} [{}]\n  findings: {:?}\n  before: server {} | client {}\n  \
             hello ladder: {}\n  own attempts:\n    {}\n  report {}",
            self.name(),
            clock_time(self.started),
            self.took.as_secs_f64(),
            self.headline,
            self.status,
            self.ids(),
            one_line(&self.server_route_before),
            one_line(&self.client_route_before),
            hellos.join("; "),
            attempts.join("\n    "),
            self.id,
        )
    }
}

// ---------- the kernels' cached path MTUs ----------

/// `ip route get <client>` in the server namespace.
fn server_route(lab: &Lab) -> String {
    route(lab, &lab.server, lab.client_ip())
}

/// `ip route get <server>` in the client namespace.
fn client_route(lab: &Lab) -> String {
    route(lab, &lab.client, lab.server_ip())
}

fn route(lab: &Lab, ns: &str, to: &str) -> String {
    let out = lab.sh(ns, &format!("ip route get {to}"), 10);
    assert!(out.ok(), "ip route get {to} in {ns}: {out:?}");
    out.stdout.trim().to_owned()
}

/// A 64 KiB HTTPS download from the client, outside any run (curl's
/// ClientHello fits one packet): our full-size packets toward the client
/// meet r2's ICMP, and the server's kernel learns 1,400 toward the client.
/// Returns `ip route get` in the server namespace afterwards.
fn teach_server(lab: &Lab) -> String {
    let out = lab.client(
        &format!(
            "curl -sk -g --max-time 10 -o /dev/null -w '%{{http_code}} %{{size_download}}' \
             https://{}:{}/probe/down/65536",
            lab.server_host(),
            netns::HTTPS_PORT
        ),
        15,
    );
    assert!(
        out.ok() && out.stdout.starts_with("200"),
        "the download: {out:?}"
    );
    server_route(lab)
}

/// The path MTU the server's kernel has cached toward the client.
fn server_pmtu(lab: &Lab) -> Option<u32> {
    lab.path_mtu(&lab.server, lab.client_ip())
}

/// The path MTU the client's kernel has cached toward the server.
fn client_pmtu(lab: &Lab) -> Option<u32> {
    lab.path_mtu(&lab.client, lab.server_ip())
}

// ---------- soft checks ----------

/// Broken expectations, collected so that a test runs all its steps and
/// reports everything that went wrong at once.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let what = what();
            eprintln!("FAILED CHECK: {what}");
            self.failures.push(what);
        }
    }

    fn fail(&mut self, what: String) {
        self.check(false, || what);
    }

    fn finish(self, lab: &Lab, runs: &[Run], began: Instant) {
        eprintln!("took {:.0} s", began.elapsed().as_secs_f64());
        if self.failures.is_empty() {
            return;
        }
        let summaries: Vec<String> = runs.iter().map(Run::summary).collect();
        let last = runs
            .last()
            .map(|r| format!("{}\n{:#}", r.text, r.report))
            .unwrap_or_default();
        let log = lab.server_log();
        let tail: String = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "{} broken expectation(s):\n- {}\n\n--- runs ---\n{}\n\n--- the last run's output and report ---\n{last}\n\n--- server log (tail) ---\n{tail}",
            self.failures.len(),
            self.failures.join("\n- "),
            summaries.join("\n"),
        );
    }
}

// ---------- small helpers ----------

/// HH:MM (UTC) of `t`.
fn clock_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() % 86_400;
    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// Every HH:MM (UTC) from a minute before `from` to a minute after `to`.
fn clock_times(from: SystemTime, to: SystemTime) -> Vec<String> {
    let mut t = from - Duration::from_secs(60);
    let end = to + Duration::from_secs(60);
    let mut out: Vec<String> = Vec::new();
    while t <= end {
        let s = clock_time(t);
        if !out.contains(&s) {
            out.push(s);
        }
        t += Duration::from_secs(30);
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
