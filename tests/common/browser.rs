//! Headless Chromium in real time, through `tests/tools/cdp.py` (the DevTools
//! protocol over a pipe). Unlike `chromium --dump-dom --virtual-time-budget`,
//! whose virtual clock stands still while a request is pending, the page's
//! timers keep running while a fetch hangs in a black hole, so a test can wait
//! for what the page shows after its own timeouts.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The driver script.
const CDP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/cdp.py");

/// Time on top of the page's deadline for Chromium to start, hand over the
/// HTML and a screenshot, and exit, after which the driver is killed.
const SLACK: Duration = Duration::from_secs(60);

/// Whether the driver can run here: `python3` and `chromium` installed.
/// Outside CI a missing tool skips the test with a message; with CI=true it
/// fails, naming what is missing.
pub fn available() -> bool {
    ["python3", "chromium"]
        .iter()
        .all(|tool| super::require_tool(tool))
}

/// How a page ended up.
#[derive(Debug, Clone)]
pub struct PageResult {
    /// The expression took one of the wanted values before the deadline.
    pub reached: bool,
    /// Its last value (`null` when it threw, e.g. before the page loaded).
    pub value: Value,
    /// Real time from navigation start until reached, or until the deadline.
    pub elapsed: Duration,
    /// `document.documentElement.outerHTML` at the end; empty if the page
    /// did not answer (a script stuck in a loop).
    pub html: String,
    /// Why navigation failed (`net::ERR_CONNECTION_REFUSED`...), if it did.
    pub navigation_error: Option<String>,
}

impl PageResult {
    /// The last value as text: a string as is, anything else as JSON.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Opens `url` in a fresh headless Chromium (in network namespace `netns`, if
/// given) and polls `until_js` every 200 ms of real time until it equals one
/// of `until_values` (non-strings compare as JSON: `true`, `3`) or `deadline`
/// passes. `extra_flags` go to Chromium (`--ignore-certificate-errors-spki-list=...`).
/// With `screenshot`, a 1200×2600 PNG of the page at the end is written there.
/// Panics when the driver fails (Chromium missing or crashing, a protocol error).
pub fn run_page(
    netns: Option<&str>,
    url: &str,
    until_js: &str,
    until_values: &[&str],
    deadline: Duration,
    extra_flags: &[String],
    screenshot: Option<&Path>,
) -> PageResult {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5"])
        .arg(format!("{}", (deadline + SLACK).as_secs()));
    if let Some(ns) = netns {
        cmd.args(["ip", "netns", "exec", ns]);
    }
    // `--name=value`: a value starting with "-" is not taken for an option.
    cmd.args(["python3", CDP])
        .arg(format!("--url={url}"))
        .arg(format!("--until-js={until_js}"))
        .arg(format!("--deadline={:.3}", deadline.as_secs_f64()));
    for value in until_values {
        cmd.arg(format!("--until={value}"));
    }
    if let Some(path) = screenshot {
        let mut arg = std::ffi::OsString::from("--screenshot=");
        arg.push(path);
        cmd.arg(arg);
    }
    cmd.arg("--").args(extra_flags);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run timeout/python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cdp.py failed ({}) opening {url}:\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("cdp.py printed no JSON ({e}):\n{stdout}\n{stderr}"));
    PageResult {
        reached: json["reached"] == true,
        value: json["value"].clone(),
        elapsed: Duration::from_millis(json["elapsed_ms"].as_u64().unwrap_or_default()),
        html: json["html"].as_str().unwrap_or_default().to_owned(),
        navigation_error: json["navigation_error"].as_str().map(str::to_owned),
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the certificate in `pem`, the
/// form `--ignore-certificate-errors-spki-list` takes: Chromium trusts the
/// test server's self-signed certificate by its key alone.
pub fn spki_hash(pem: &Path) -> String {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};
    let der = rustls::pki_types::CertificateDer::from_pem_file(pem).expect("certificate PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("certificate");
    base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
}

/// The text between the first `start` and the `end` after it, in a page's
/// serialized DOM.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// The entities a serialized DOM or askama uses in text and attributes.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
