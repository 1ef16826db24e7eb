//! The whole customer flow in a real browser: headless Chromium (Debian's
//! package) opens the page support sent (`/?case=ACME-1234`) over HTTPS, the
//! page runs its path test by itself and shows a report link; Chromium then
//! opens that link. A screenshot of the saved report is left at
//! `target/browser-report.png` for people to look at.
//!
//! Chromium is driven from the command line: `--dump-dom` with a virtual-time
//! budget lets the page's scripts run to completion before the DOM is printed
//! (virtual time stands still while requests are in flight). The server's
//! self-signed certificate is trusted by its SPKI hash only.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::spki_hash;
use common::*;

const CHROMIUM: &str = "chromium";

fn chromium(profile: &Path, spki: &str, extra: &[&str], url: &str) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_runs_the_test_and_the_report_link_shows_what_it_did() {
    if !require_tool(CHROMIUM) {
        return;
    }
    let server = TestServer::start().await;
    let spki = spki_hash(&server.cert);
    let profile = tempfile::tempdir().unwrap();
    let page_url = format!("https://localhost:{}/?case=ACME-1234", server.https.port());

    let dom = {
        let (profile, spki, url) = (profile.path().to_owned(), spki.clone(), page_url.clone());
        tokio::task::spawn_blocking(move || {
            chromium(
                &profile,
                &spki,
                &["--virtual-time-budget=120000", "--dump-dom"],
                &url,
            )
        })
        .await
        .unwrap()
    };
    assert!(
        dom.contains(r#"data-state="done""#),
        "the path test did not finish:\n{dom}"
    );
    // The page itself explains Chromium's own ClientHello.
    assert!(
        dom.contains("TLS 1.3, X25519MLKEM768, ClientHello"),
        "no summary:\n{dom}"
    );
    let link = dom
        .split(['"', '<', '>'])
        .find(|s| s.starts_with("https://localhost:") && s.contains("/r/"))
        .unwrap_or_else(|| panic!("no report link on the page:\n{dom}"))
        .to_owned();
    let id = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{link}");

    // What was saved, as support's tools would read it.
    let report = server.saved_report(&id).await;
    assert_eq!(report["agent"], "browser");
    assert_eq!(report["label"], "ACME-1234");
    let tls = &report["connection"]["tls"];
    assert_eq!(tls["negotiated"]["version"]["name"], "TLS 1.3");
    assert_eq!(
        tls["negotiated"]["key_exchange_group"]["name"],
        "X25519MLKEM768"
    );
    let user_agent = report["connection"]["connection"]["user_agent"]
        .as_str()
        .unwrap();
    assert!(user_agent.contains("Chrome/"), "{user_agent}");
    for dir in ["down", "up"] {
        let steps = report["probe"][dir].as_array().unwrap();
        assert_eq!(steps.len(), 12, "{dir}: {steps:#?}");
        assert!(
            steps.iter().all(|s| s["client"]["ok"] == true),
            "{dir} failed on loopback: {steps:#?}"
        );
    }

    // Support opens the link.
    let saved = {
        let (profile, spki, link) = (profile.path().to_owned(), spki.clone(), link.clone());
        tokio::task::spawn_blocking(move || chromium(&profile, &spki, &["--dump-dom"], &link))
            .await
            .unwrap()
    };
    for shown in [
        "ACME-1234",
        "TLS 1.3",
        "X25519MLKEM768",
        "1048576",
        "Copy link",
        &id,
    ] {
        assert!(
            saved.contains(shown),
            "the saved report does not show {shown:?}:\n{saved}"
        );
    }
    assert!(saved.contains("No problem found"), "{saved}");

    let shot = target_dir().join("browser-report.png");
    let (profile, spki) = (profile.path().to_owned(), spki);
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || {
        chromium(&profile, &spki, &["--window-size=1200,2600", &arg], &link)
    })
    .await
    .unwrap();
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
