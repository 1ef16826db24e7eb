//! Runs through a real forwarding proxy: Debian's squid, started by each test
//! with a configuration of its own, between real clients (check.sh under sh,
//! headless Chromium) and the real server. What the tests expect comes from
//! how each was set up: the clients were told to use squid, squid's access
//! log shows that they did, and squid names itself in `Via` with the version
//! `squid -v` reports. The verdict must then say whose path was tested.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::browser::{between, spki_hash, unescape};
use common::*;
use serde_json::Value;
use tokio::process::Command;

/// What squid calls itself in `Via` (its `visible_hostname`).
const PROXY_HOST: &str = "tlsdiag-test-proxy";

/// A test's whole budget, including the server, squid and the client.
const BUDGET: Duration = Duration::from_secs(60);

/// Proxy variables that would send the client elsewhere, or around squid.
const FOREIGN_PROXY_ENV: &[&str] = &[
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
];

/// squid in the foreground (`squid -N`) on a free loopback port, with its own
/// configuration and logs in a temporary directory, no cache, forwarding only
/// to 127.0.0.1 (Chromium's own background requests are refused, not sent to
/// the internet) and CONNECT only to the server's HTTPS port. Stopped when
/// dropped.
struct Squid {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Squid {
    async fn start(tls_port: u16) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // Started as root, squid drops to its cache_effective_user (Debian:
        // proxy) before it writes its logs and pid file: let it.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let d = dir.path().display();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             visible_hostname {PROXY_HOST}\n\
             shutdown_lifetime 0 seconds\n\
             pid_filename {d}/squid.pid\n\
             cache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\n\
             cache_store_log none\n\
             coredump_dir {d}\n\
             netdb_filename none\n\
             pinger_enable off\n\
             strip_query_terms off\n\
             cache deny all\n\
             cache_mem 8 MB\n\
             acl tlsdiag_server dstdomain 127.0.0.1\n\
             acl tlsdiag_tls port {tls_port}\n\
             http_access deny !tlsdiag_server\n\
             http_access deny CONNECT !tlsdiag_tls\n\
             http_access allow localhost\n\
             http_access deny all\n"
        );
        let conf_path = dir.path().join("squid.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = std::process::Command::new("squid")
            .arg("-N")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("squid does not start: {e}"));
        let mut squid = Self {
            addr: ([127, 0, 0, 1], port).into(),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(squid.addr).await.is_err() {
            if let Some(status) = squid.child.try_wait().unwrap() {
                panic!("squid exited ({status}):\n{}", squid.own_logs());
            }
            assert!(
                Instant::now() < deadline,
                "squid did not listen on {} within 20 s:\n{}",
                squid.addr,
                squid.own_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        squid
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        self.read("access.log")
    }

    /// squid's cache.log and stderr, for failure messages.
    fn own_logs(&self) -> String {
        format!(
            "cache.log:\n{}\nstderr:\n{}",
            self.read("cache.log"),
            self.read("stderr.log")
        )
    }

    /// The access log once it holds a line with every one of `needles`
    /// (squid logs a tunnel when it closes), within 10 s.
    async fn log_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.access_log();
            if log
                .lines()
                .any(|line| needles.iter().all(|n| line.contains(n)))
            {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "squid's access log has no line with {needles:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        // SIGTERM: with shutdown_lifetime 0 squid exits at once; SIGKILL if not.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version `squid -v` reports ("Squid Cache: Version 5.7" → "5.7").
async fn squid_version() -> String {
    let out = Command::new("squid").arg("-v").output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Squid Cache: Version "))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no version in `squid -v`:\n{text}"))
}

fn finding_ids(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {report:#}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} finding: {report:#}"))
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the run report must say about the proxy, whoever ran the test: the
/// headline names squid (its `Via`) and, when the run passed, says which path
/// was and was not tested; the proxy block and `run.through-proxy` say how we
/// know; squid's headers on the results post are a finding of their own.
fn assert_names_squid(report: &Value, version: &str) {
    let name = format!("squid/{version}");
    let verdict = report["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.starts_with(&format!("Through your proxy ({name}): ")),
        "verdict: {verdict:?}\n{report:#}"
    );
    assert_eq!(
        report["status"], "clear",
        "loopback through squid is a clear path: {report:#}"
    );
    assert!(
        verdict.contains("the path from the proxy to us is clear")
            && verdict.ends_with(
                "Your computer's own path to the proxy was not tested packet by packet."
            ),
        "the verdict does not say what was and was not tested: {verdict:?}"
    );
    assert_eq!(report["proxy"]["name"], name.as_str(), "{report:#}");
    let via = format!("{PROXY_HOST} ({name})");
    let evidence = report["proxy"]["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e.as_str().unwrap_or_default().contains(&via)),
        "the proxy's evidence does not quote squid's Via ({via}): {evidence:#?}"
    );
    let ids = finding_ids(report);
    for id in ["run.through-proxy", "http.proxy-headers"] {
        assert!(ids.contains(&id.to_owned()), "{id} missing from {ids:?}");
    }
    let through = finding(report, "run.through-proxy");
    assert_eq!(through["severity"], "info", "{through:#}");
    assert!(
        through["title"].as_str().unwrap().contains(&name),
        "{through:#}"
    );
    let how: Vec<&Value> = through["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["label"] == "how we know")
        .collect();
    assert!(!how.is_empty(), "no \"how we know\" evidence: {through:#}");
    let headers = finding(report, "http.proxy-headers");
    assert!(
        headers.to_string().contains(&via),
        "http.proxy-headers does not show squid's Via: {headers:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_sh_through_squid_names_the_proxy_and_what_was_tested() {
    if !["squid", "curl", "sh", "openssl"]
        .iter()
        .all(|t| require_tool(t))
    {
        return;
    }
    let started = Instant::now();
    let version = squid_version().await;
    let server = TestServer::start().await;
    let squid = Squid::start(server.https.port()).await;
    let proxy = format!("http://{}", squid.addr);
    let url = format!(
        "http://127.0.0.1:{}/check.sh?case=PROXY-SH",
        server.http.port()
    );
    let mut command = Command::new("sh");
    for var in FOREIGN_PROXY_ENV {
        command.env_remove(var);
    }
    command
        .arg("-c")
        .arg(format!("curl -s '{url}' | sh"))
        .env("http_proxy", &proxy)
        .env("https_proxy", &proxy)
        .env("CURL_CA_BUNDLE", &server.cert)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(50), command.output())
        .await
        .expect("check.sh took over 50 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("check.sh through squid:\n{stdout}");

    // The client's side: the certificate verified through the tunnel, and
    // every step of both ladders passed through squid.
    assert!(stdout.contains("https  certificate verified"), "{stdout}");
    for size in ["512", "1200", "1400", "1500", "2000", "4000"] {
        assert!(
            stdout.contains(&format!("hello {size:>8} B  ok")),
            "ClientHello {size} through squid: {stdout}"
        );
    }
    for dir in ["down", "up"] {
        assert!(
            stdout.contains(&format!("{dir:<4}  1048576 B")) && !stdout.contains("FAILED"),
            "{dir} ladder: {stdout}"
        );
    }

    // Squid's side: it carried the script, every TLS connection and the
    // results post.
    let http = server.http.port();
    let tls = format!("127.0.0.1:{}", server.https.port());
    let log = squid
        .log_with(&[
            "POST",
            &format!("http://127.0.0.1:{http}/api/v1/probe/results"),
            "/200 ",
        ])
        .await;
    assert!(
        log.lines()
            .any(|l| l.contains(&format!(" GET http://127.0.0.1:{http}/check.sh"))),
        "{log}"
    );
    let tunnels = log
        .lines()
        .filter(|l| l.contains(&format!(" CONNECT {tls} ")) && l.contains("TCP_TUNNEL/200"))
        .count();
    // curl's certificate check, one connection per ladder direction, and
    // openssl's calibration hello plus six sizes.
    assert!(
        tunnels >= 10,
        "{tunnels} CONNECT tunnels to {tls}, expected at least 10:\n{log}"
    );

    // The verdict check.sh printed (wrapped) is the saved report's.
    let printed = squash(
        stdout
            .split("Verdict\n-------\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_else(|| panic!("no verdict printed:\n{stdout}")),
    );
    assert!(
        printed.starts_with(&format!("Through your proxy (squid/{version}): ")),
        "printed verdict: {printed:?}"
    );
    let link = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Report link (send it to support): "))
        .unwrap_or_else(|| panic!("no report link:\n{stdout}"));
    let id = link.trim().rsplit('/').next().unwrap();
    let report = server.saved_report(id).await;
    assert_eq!(report["agent"], "check.sh", "{report:#}");
    assert_eq!(report["label"], "PROXY-SH", "{report:#}");
    assert_eq!(printed, squash(report["verdict"].as_str().unwrap()));
    assert_names_squid(&report, &version);
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_through_squid_names_the_proxy() {
    if !require_tool("squid") || !browser::available() {
        return;
    }
    let started = Instant::now();
    let version = squid_version().await;
    let server = TestServer::start().await;
    let squid = Squid::start(server.https.port()).await;
    let flags = vec![
        format!("--proxy-server=http://{}", squid.addr),
        // Chromium never proxies loopback unless told to.
        "--proxy-bypass-list=<-loopback>".to_owned(),
        format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_hash(&server.cert)
        ),
    ];
    let http = server.http.port();
    let url = format!("http://127.0.0.1:{http}/?case=PROXY-BROWSER");
    let shot: PathBuf = squid.dir.path().join("page.png");
    let page = {
        let (url, shot) = (url.clone(), shot.clone());
        tokio::task::spawn_blocking(move || {
            browser::run_page(
                None,
                &url,
                "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
                &["done", "error"],
                Duration::from_secs(40),
                &flags,
                Some(&shot),
            )
        })
        .await
        .unwrap()
    };
    assert!(
        page.reached && page.value_text() == "done",
        "the page reached no verdict ({}) in {:?}: {:?}\n{}",
        page.value_text(),
        page.elapsed,
        page.navigation_error,
        page.html
    );
    let probe = between(&page.html, "id=\"probe\"", ">")
        .unwrap_or_else(|| panic!("no #probe on the page:\n{}", page.html));
    let verdict = unescape(
        between(probe, "data-verdict=\"", "\"")
            .unwrap_or_else(|| panic!("no data-verdict on #probe: {probe}")),
    );
    eprintln!("Chromium through squid, data-verdict: {verdict}");
    assert!(
        verdict.starts_with(&format!("Through your proxy (squid/{version}): ")),
        "data-verdict: {verdict:?}\n{}",
        page.html
    );
    let status = between(probe, "data-status=\"", "\"").unwrap_or_default();

    // Squid carried the page, the HTTPS tests (CONNECT to the non-443 port)
    // and the results post.
    let tls = format!("127.0.0.1:{}", server.https.port());
    let log = squid
        .log_with(&[" CONNECT ", &format!("{tls} "), "TCP_TUNNEL/200"])
        .await;
    for wanted in [
        format!(" GET http://127.0.0.1:{http}/?case=PROXY-BROWSER "),
        format!(" POST http://127.0.0.1:{http}/api/v1/probe/results "),
    ] {
        assert!(
            log.lines().any(|l| l.contains(&wanted)),
            "squid did not carry{wanted}:\n{log}"
        );
    }

    let link = unescape(
        between(&page.html, "class=\"probe-url\" href=\"", "\"")
            .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html)),
    );
    let id = link.rsplit('/').next().unwrap();
    let report = server.saved_report(id).await;
    assert_eq!(report["agent"], "browser", "{report:#}");
    assert_eq!(report["label"], "PROXY-BROWSER", "{report:#}");
    assert_eq!(
        report["verdict"],
        verdict.as_str(),
        "page and saved report differ"
    );
    assert_eq!(report["status"], status, "page and saved report differ");
    assert_names_squid(&report, &version);
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}
