//! tlsdiag: a diagnostic HTTPS endpoint that answers one question — why can't
//! this client complete a TLS handshake with us?
//!
//! Every connection to the HTTPS port is captured byte for byte until its
//! ClientHello is complete (or provably never will be), parsed, fingerprinted,
//! handed on to rustls, and recorded as an attempt with a precise outcome. The
//! reports (HTML, JSON, text) show a client its own ClientHello and what its
//! network path did to it, over HTTPS and over plain HTTP.
//!
//! Data flows one way; lower layers never import higher ones:
//!
//! ```text
//! server -> capture -> hello -> fingerprint / diagnose -> recent -> report -> compare -> web
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | command-line flags checked into a [`config::Config`] |
//! | [`certs`] | the certificate in service: loading or generating it, reloading it (SIGHUP, file change), ACME; the rustls config and [`profile::ServerProfile`] |
//! | [`server`] | listeners, accept loops, per-connection tasks, HTTP serving |
//! | [`capture`] | reading the raw ClientHello with a read log; replaying it to rustls |
//! | [`hello`] | parsing bytes into the ClientHello model (pure) |
//! | [`fingerprint`] | JA3 and JA4 (pure) |
//! | [`attempt`] | one attempt's record and its classified outcome (pure) |
//! | [`diagnose`] | findings from observations (pure) |
//! | [`probe`] | stepped-size transfer probes: payload, `TCP_INFO` watcher, run model |
//! | [`profile`] | what this server accepts, for "you offered X, we accept Y" |
//! | [`proxy`] | the PROXY protocol header a load balancer sends first (`--proxy-protocol`): the client's address, and that the TCP facts are the balancer's |
//! | [`recent`] | recent attempts and probe observations per client address, in memory, bounded |
//! | [`icmp`] | our own ICMP "fragmentation needed" toward a stuck client, and its limits |
//! | [`inflight`] | HTTPS connections whose attempt has not ended, readable while they hang |
//! | [`metrics`] | Prometheus counters and histograms; outcome counts by source network (AS table, top-N) |
//! | [`packets`] | the server's packet capture of every HTTPS connection (a packet socket, a bounded per-connection table) and pcapng out |
//! | [`tcp`] | the client's SYN and `TCP_INFO` snapshots |
//! | `sys` | the Linux socket options std lacks (the only `unsafe`) |
//! | [`reports`] | where saved reports are kept: ids, labels, SQLite storage, retention |
//! | [`route`] | what our kernel remembers about the path toward a client (a learned path MTU): read, and forgotten when a run starts |
//! | [`pg`] | PostgreSQL for several instances (`--database-url`): saved reports and the shared recent attempts |
//! | [`report`] | the view models (a connection's report; a run's report, which is also the saved document) and their text and HTML renderings |
//! | [`compare`] | two saved reports side by side: the pure diff, the ranked explanation, its view model and renderers |
//! | [`web`] | axum routes, format negotiation, errors |
//! | [`util`] | small formatting helpers |

pub mod attempt;
pub mod capture;
pub mod certs;
pub mod compare;
pub mod config;
pub mod diagnose;
pub mod fingerprint;
pub mod hello;
pub mod icmp;
pub mod inflight;
pub mod metrics;
pub mod packets;
pub mod pg;
pub mod probe;
pub mod profile;
pub mod proxy;
pub mod recent;
pub mod report;
pub mod reports;
pub mod route;
pub mod server;
mod sys;
pub mod tcp;
pub mod util;
pub mod web;
