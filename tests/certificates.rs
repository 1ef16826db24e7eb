//! Certificate reloading, against the real binary: SIGHUP and file changes
//! serve a new certificate to new handshakes while open connections finish
//! on the old one; a broken replacement keeps the old one in service.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{cn_and_serial, Leaf, TestCa};
use common::process::Tlsdiag;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Writes the pair as an operator's deploy would: each file replaced whole.
fn install(dir: &Path, cert_pem: &str, key_pem: &str) {
    for (name, text) in [("cert.pem", cert_pem), ("key.pem", key_pem)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(name)).expect("rename");
    }
}

fn install_leaf(dir: &Path, leaf: &Leaf) {
    install(dir, &leaf.cert_pem, &leaf.key_pem);
}

struct Setup {
    dir: tempfile::TempDir,
    ca: TestCa,
    a: Leaf,
    b: Leaf,
}

impl Setup {
    fn new() -> Self {
        let ca = TestCa::new("tlsdiag reload test CA");
        let a = ca.leaf("cert-a", &["localhost", "a.test"], 0x41);
        let b = ca.leaf("cert-b", &["localhost", "b.test"], 0x42);
        let dir = tempfile::tempdir().expect("temp dir");
        install_leaf(dir.path(), &a);
        Self { dir, ca, a, b }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self, reload_interval: &str) -> Tlsdiag {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        let (data, certs) = (self.path("data"), self.path("certs"));
        Tlsdiag::start(&[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--tls-reload-interval",
            reload_interval,
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--certs-dir",
            certs.to_str().expect("utf-8"),
        ])
    }

    fn client(&self) -> Arc<rustls::ClientConfig> {
        let ca = self.path("ca.pem");
        std::fs::write(&ca, &self.ca.pem).expect("write CA");
        common::client_config_trusting(&ca, &["http/1.1"])
    }
}

/// An HTTP/1.1 keep-alive connection over TLS, verified against the test CA.
struct Conn {
    tls: Tls,
    /// The served leaf's subject CN and serial.
    leaf: (String, String),
}

impl Conn {
    async fn open(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        let leaf = {
            let (_, conn) = tls.get_ref();
            cn_and_serial(conn.peer_certificates().expect("peer certificates")[0].as_ref())
        };
        Self { tls, leaf }
    }

    /// One request on this connection; the response body.
    async fn get(&mut self, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tls
            .write_all(request.as_bytes())
            .await
            .expect("request");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no full response in 10 s");
            let n = tokio::time::timeout(Duration::from_secs(10), self.tls.read(&mut chunk))
                .await
                .expect("response in time")
                .expect("read");
            assert!(n > 0, "connection closed before the response ended");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("content-length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_owned();
                }
            }
        }
    }
}

/// Opens new connections until one is served `cn`, for up to `limit`.
async fn wait_for_leaf(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    cn: &str,
    limit: Duration,
) -> (String, String) {
    let start = Instant::now();
    loop {
        let leaf = Conn::open(addr, config.clone()).await.leaf;
        if leaf.0 == cn || start.elapsed() > limit {
            return leaf;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_serves_the_new_certificate_while_open_connections_finish() {
    let setup = Setup::new();
    let mut server = setup.start("1h");
    let config = setup.client();

    let mut old = Conn::open(server.https, config.clone()).await;
    assert_eq!(old.leaf, ("cert-a".to_owned(), "41".to_owned()));
    assert_eq!(old.get("/healthz").await, "ok\n");

    install_leaf(setup.dir.path(), &setup.b);
    // Checked hourly here: without the signal nothing changes yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        Conn::open(server.https, config.clone()).await.leaf.0,
        "cert-a"
    );

    server.signal("HUP");
    let seen = wait_for_leaf(server.https, &config, "cert-b", Duration::from_secs(10)).await;
    assert_eq!(seen, ("cert-b".to_owned(), "42".to_owned()), "after SIGHUP");

    // The connection opened on A still serves requests.
    assert_eq!(old.get("/healthz").await, "ok\n");
    let report = old.get("/api/v1/connection").await;
    assert!(report.contains("\"sni\""), "{report}");
    assert!(server.running(), "SIGHUP must not end the process");

    // Reports describe the certificate now served: a client asking for a
    // name only A covered is told what B serves.
    let stale = tokio_rustls::TlsConnector::from(config.clone())
        .connect(
            ServerName::try_from("a.test").expect("name"),
            tokio::net::TcpStream::connect(server.https)
                .await
                .expect("connect"),
        )
        .await;
    assert!(stale.is_err(), "B does not cover a.test");
    let mut attempts = String::new();
    for _ in 0..50 {
        attempts =
            common::http_get_from(server.http, [127, 0, 0, 1].into(), "/api/v1/attempts").await;
        if attempts.contains("tls.sni-not-served") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attempts.contains("tls.sni-not-served"), "{attempts}");
    assert!(attempts.contains("localhost, b.test"), "{attempts}");
    assert!(!attempts.contains("localhost, a.test"), "{attempts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_certificate_file_is_served_without_a_signal() {
    let setup = Setup::new();
    let server = setup.start("200ms");
    let config = setup.client();
    assert_eq!(
        Conn::open(server.https, config.clone()).await.leaf.0,
        "cert-a"
    );
    install_leaf(setup.dir.path(), &setup.b);
    let seen = wait_for_leaf(server.https, &config, "cert-b", Duration::from_secs(10)).await;
    assert_eq!(seen, ("cert-b".to_owned(), "42".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_replacement_keeps_the_old_certificate_in_service() {
    let setup = Setup::new();
    let mut server = setup.start("200ms");
    let config = setup.client();
    let cert_path = setup.path("cert.pem");
    let key_path = setup.path("key.pem");
    let cert = cert_path.to_str().expect("utf-8");

    // Not PEM at all.
    install(
        setup.dir.path(),
        "this is not a certificate\n",
        &setup.a.key_pem,
    );
    let line = server
        .wait_for_log(
            &[
                "WARN",
                "keeping the current one",
                cert,
                "no PEM certificate",
            ],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no warning naming {cert}; log:\n{}", server.log()));
    assert!(line.contains("no PEM certificate"), "{line}");
    assert_eq!(
        Conn::open(server.https, config.clone()).await.leaf.0,
        "cert-a"
    );

    // B's certificate with A's key.
    install(setup.dir.path(), &setup.b.cert_pem, &setup.a.key_pem);
    server
        .wait_for_log(
            &["WARN", "does not match", key_path.to_str().expect("utf-8")],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no key-mismatch warning; log:\n{}", server.log()));
    assert_eq!(
        Conn::open(server.https, config.clone()).await.leaf.0,
        "cert-a"
    );

    // A SIGHUP with the broken pair still in place changes nothing either.
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = Conn::open(server.https, config.clone()).await.leaf;
    assert_eq!(still, ("cert-a".to_owned(), "41".to_owned()));
    assert!(server.running());

    // Fixing the files is enough.
    install_leaf(setup.dir.path(), &setup.b);
    let seen = wait_for_leaf(server.https, &config, "cert-b", Duration::from_secs(10)).await;
    assert_eq!(seen.0, "cert-b");
}

#[test]
fn acme_and_tls_cert_flags_are_exclusive() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args([
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
            "--acme-directory",
            "https://127.0.0.1:14000/dir",
            "--acme-domain",
            "diag.example",
        ])
        .output()
        .expect("run tlsdiag");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("--acme-"),
        "{stderr}"
    );
}
