//! TLS interception, with a real intercepting proxy: mitmproxy (from PyPI) in
//! regular proxy mode between real clients and the real server. What the
//! tests expect comes from how each was set up: which client ran, whether it
//! went through mitmproxy, and the client's own version (`chromium --version`).
//!
//! Through the proxy, headless Chromium and curl must be told, in the page,
//! the text report and the attempts JSON. Directly, no client may be: Chromium,
//! curl (default, HTTP/1.1, TLS 1.2), wget, Python's urllib, Node's fetch,
//! gnutls-cli and openssl s_client.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const FINDING: &str = "tls.intercepted";

/// mitmdump: `TLSDIAG_MITMDUMP` (where `.ci/run` installs it), else on PATH.
fn mitmdump() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TLSDIAG_MITMDUMP") {
        return Some(PathBuf::from(path));
    }
    require_tool("mitmdump").then(|| PathBuf::from("mitmdump"))
}

/// A mitmdump in regular proxy mode on a free loopback port, with its own
/// CA in a temporary directory, trusting only our server's certificate
/// upstream. Killed when dropped.
struct Mitmproxy {
    addr: SocketAddr,
    confdir: tempfile::TempDir,
    _child: Child,
}

impl Mitmproxy {
    /// `upstream_ca`: what the proxy trusts upstream (`None`: its default
    /// public roots, which do not include our test certificate).
    async fn start(program: &Path, upstream_ca: Option<&Path>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let confdir = tempfile::tempdir().unwrap();
        let mut command = Command::new(program);
        command
            .args([
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                &port.to_string(),
                "-q",
            ])
            .arg("--set")
            .arg(format!("confdir={}", confdir.path().display()));
        if let Some(ca) = upstream_ca {
            command
                .arg("--set")
                .arg(format!("ssl_verify_upstream_trusted_ca={}", ca.display()));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let ca = confdir.path().join("mitmproxy-ca-cert.pem");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() || !ca.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mitmdump did not listen on {addr} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            addr,
            confdir,
            _child: child,
        }
    }

    fn ca(&self) -> PathBuf {
        self.confdir.path().join("mitmproxy-ca-cert.pem")
    }
}

/// Runs `program args`, returning stdout; panics with stderr on failure.
async fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} {args:?} took over 30 s"))
    .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn curl(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("curl", &args, &[]).await
}

/// The major version `chromium --version` reports.
async fn chromium_major() -> u32 {
    let version = run("chromium", &["--version"], &[]).await;
    version
        .split_whitespace()
        .find_map(|word| word.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no version in {version:?}"))
}

/// Loads `url` in headless Chromium (through `proxy`, if given) and returns
/// the page's HTML once the report has rendered.
async fn chromium_page(url: String, proxy: Option<SocketAddr>) -> String {
    let mut flags = vec!["--ignore-certificate-errors".to_owned()];
    if let Some(proxy) = proxy {
        flags.push(format!("--proxy-server=http://{proxy}"));
        // Chromium never proxies loopback unless told to.
        flags.push("--proxy-bypass-list=<-loopback>".to_owned());
    }
    let page = tokio::task::spawn_blocking(move || {
        browser::run_page(
            None,
            &url,
            "document.querySelector('h1') !== null",
            &["true"],
            Duration::from_secs(20),
            &flags,
            None,
        )
    })
    .await
    .unwrap();
    assert!(
        page.reached,
        "the report page did not render: {:?}\n{}",
        page.navigation_error, page.html
    );
    page.html
}

fn attempts_with(report: &Value, id: &str) -> Vec<Value> {
    report["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| {
            a["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == id)
        })
        .cloned()
        .collect()
}

fn tools_present() -> bool {
    ["curl", "chromium", "python3"]
        .iter()
        .all(|t| require_tool(t))
        && browser::available()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_mitmproxy_is_told_in_text_html_and_json() {
    let Some(program) = mitmdump() else { return };
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start().await;
    let proxy = Mitmproxy::start(&program, Some(&server.cert)).await;
    let url = format!("https://localhost:{}", server.https.port());
    let via = |path: &str, accept: &str| {
        vec![
            "-sS".to_owned(),
            "--proxy".to_owned(),
            format!("http://{}", proxy.addr),
            "--cacert".to_owned(),
            proxy.ca().display().to_string(),
            "-H".to_owned(),
            format!("Accept: {accept}"),
            format!("{url}{path}"),
        ]
    };
    // The title names the proxy (we started mitmproxy) and the client (curl).
    let title = "Your HTTPS is intercepted: mitmproxy made this TLS connection, not your curl";
    let text = curl(&via("/", "text/plain")).await;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(title), "text report:\n{text}");
    assert!(flat.contains("your request says: curl/"), "{text}");

    let html = curl(&via("/", "text/html")).await;
    assert!(html.contains(title), "HTML report:\n{html}");

    let attempts = json(&curl(&via("/api/v1/attempts", "application/json")).await);
    let flagged = attempts_with(&attempts, FINDING);
    assert_eq!(
        flagged.len(),
        3,
        "each of the three requests came through mitmproxy:\n{attempts:#}"
    );
    for a in &flagged {
        assert!(a["first_request"]["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("curl/"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_mitmproxy_is_told_in_the_page_the_text_and_json() {
    let Some(program) = mitmdump() else { return };
    if !tools_present() {
        return;
    }
    let server = TestServer::start().await;
    let proxy = Mitmproxy::start(&program, Some(&server.cert)).await;
    let major = chromium_major().await;
    let html = chromium_page(
        format!("https://localhost:{}/", server.https.port()),
        Some(proxy.addr),
    )
    .await;
    let title = format!(
        "Your HTTPS is intercepted: mitmproxy made this TLS connection, not your HeadlessChrome {major}"
    );
    assert!(html.contains(&title), "page:\n{html}");

    // The customer's report on the plain-HTTP port (not proxied: only HTTPS
    // is intercepted) lists the intercepted attempts.
    let text = http_request_from(
        server.http,
        [127, 0, 0, 1].into(),
        "/",
        &[("Accept", "text/plain")],
    )
    .await;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&title), "text report:\n{text}");

    let attempts = server.attempts_from([127, 0, 0, 1].into()).await;
    let flagged = attempts_with(&attempts, FINDING);
    assert!(!flagged.is_empty(), "{attempts:#}");
    for a in &flagged {
        let ua = a["first_request"]["user_agent"].as_str().unwrap();
        assert!(ua.contains(&format!("HeadlessChrome/{major}.")), "{ua}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mitmproxy_refusing_our_certificate_is_named() {
    let Some(program) = mitmdump() else { return };
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start().await;
    // Our test certificate is self-signed: mitmproxy's public roots refuse it.
    let proxy = Mitmproxy::start(&program, None).await;
    let url = format!("https://localhost:{}/", server.https.port());
    // The request fails at the proxy (502): curl's own exit status says
    // nothing about us, so it is not checked.
    let _ = Command::new("curl")
        .args([
            "-s",
            "--proxy",
            &format!("http://{}", proxy.addr),
            "--cacert",
        ])
        .arg(proxy.ca())
        .arg(&url)
        .output()
        .await
        .unwrap();
    let attempts = server.attempts_from([127, 0, 0, 1].into()).await;
    let refused = attempts_with(&attempts, "tls.interceptor-rejected-certificate");
    assert_eq!(refused.len(), 1, "{attempts:#}");
    let finding = refused[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "tls.interceptor-rejected-certificate")
        .unwrap();
    assert!(
        finding["title"]
            .as_str()
            .unwrap()
            .starts_with("A TLS-intercepting proxy (mitmproxy) "),
        "{finding:#}"
    );
    // The customer's report (plain HTTP) leads with it.
    let report =
        json(&http_get_from(server.http, [127, 0, 0, 1].into(), "/api/v1/connection").await);
    assert_eq!(report["status"], "problem", "{report:#}");
    assert!(
        report["headline"]
            .as_str()
            .unwrap()
            .starts_with("A TLS-intercepting proxy (mitmproxy) "),
        "{report:#}"
    );
}

#[tokio::test]
async fn a_forwarded_plain_http_request_is_noted_with_its_headers() {
    let server = TestServer::start().await;
    let from = [127, 0, 0, 1].into();
    let plain = json(&http_get_from(server.http, from, "/api/v1/connection").await);
    let ids = |r: &Value| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        !ids(&plain).contains(&"http.proxy-headers".to_owned()),
        "{plain:#}"
    );
    let forwarded = json(
        &http_request_from(
            server.http,
            from,
            "/api/v1/connection",
            &[
                ("Via", "1.1 squid.example (squid/6.1)"),
                ("X-Forwarded-For", "198.51.100.9"),
            ],
        )
        .await,
    );
    let finding = forwarded["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "http.proxy-headers")
        .unwrap_or_else(|| panic!("{forwarded:#}"));
    assert_eq!(finding["severity"], "info");
    let evidence: Vec<&str> = finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        evidence,
        [
            "via: 1.1 squid.example (squid/6.1)",
            "x-forwarded-for: 198.51.100.9"
        ]
    );
}

/// Every direct client, one after another against one server; then no
/// attempt of them may carry the finding, and each client's request must
/// have been seen (so a client that never got through cannot pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_clients_are_never_told_they_are_intercepted() {
    let tools = [
        "curl",
        "wget",
        "python3",
        "node",
        "gnutls-cli",
        "openssl",
        "chromium",
    ];
    if !tools.iter().all(|t| require_tool(t)) || !browser::available() {
        return;
    }
    let server = TestServer::start().await;
    let port = server.https.port().to_string();
    let url = format!("https://localhost:{port}/api/v1/connection");

    run("curl", &["-sSk", &url], &[]).await;
    run("curl", &["-sSk", "--http1.1", &url], &[]).await;
    run(
        "curl",
        &["-sSk", "--tlsv1.2", "--tls-max", "1.2", &url],
        &[],
    )
    .await;
    run(
        "wget",
        &["-q", "-O", "-", "--no-check-certificate", &url],
        &[],
    )
    .await;
    let python = format!(
        "import ssl, urllib.request; \
         urllib.request.urlopen('{url}', context=ssl._create_unverified_context()).read()"
    );
    run("python3", &["-c", &python], &[]).await;
    let node = format!("fetch('{url}').then(r => r.text()).then(() => process.exit(0), e => {{ console.error(e); process.exit(1) }})");
    run(
        "node",
        &["-e", &node],
        &[("NODE_TLS_REJECT_UNAUTHORIZED", "0")],
    )
    .await;
    for (program, args) in [
        (
            "gnutls-cli",
            vec!["--insecure", "--port", &port, "localhost"],
        ),
        (
            "openssl",
            vec![
                "s_client",
                "-quiet",
                "-connect",
                &format!("localhost:{port}"),
            ],
        ),
    ] {
        let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        if program == "openssl" {
            args.push("-servername".into());
            args.push("localhost".into());
        }
        send_request(program, &args).await;
    }
    chromium_page(format!("https://localhost:{port}/"), None).await;

    let attempts = server.attempts_from([127, 0, 0, 1].into()).await;
    let seen: Vec<&str> = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["first_request"]["user_agent"].as_str())
        .collect();
    for client in [
        "curl/",
        "Wget/",
        "Python-urllib/",
        "node",
        "gnutls-cli",
        "openssl-s_client",
        "HeadlessChrome/",
    ] {
        assert!(
            seen.iter()
                .any(|ua| ua.starts_with(client) || ua.contains(client)),
            "no request from {client} was seen: {seen:?}"
        );
    }
    let flagged = attempts_with(&attempts, FINDING);
    assert!(flagged.is_empty(), "direct clients accused:\n{flagged:#?}");
}

/// Sends one GET through a command-line TLS client reading stdin, naming
/// itself after the tool.
async fn send_request(program: &str, args: &[String]) {
    let name = if program == "openssl" {
        "openssl-s_client"
    } else {
        program
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let request = format!(
        "GET /api/v1/connection HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {name}\r\nConnection: close\r\n\r\n"
    );
    // gnutls-cli reads stdin only once the handshake is done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stdin.write_all(request.as_bytes()).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish"))
        .unwrap();
    drop(stdin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"schema_version\""),
        "{program} got no report:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
