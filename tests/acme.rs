//! ACME against a real CA: Debian's `pebble` (RFC 8555 test server) with
//! validation on, its DNS answered by `pebble-challtestsrv` (every name is
//! 127.0.0.1), validating against the ports of a real tlsdiag process. The
//! certificate served must be pebble's, renewed while the server stays up,
//! and reused from the data directory after a restart.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{cn_and_serial, TestCa};
use common::process::Tlsdiag;
use rustls::pki_types::ServerName;

const DOMAIN: &str = "tlsdiag.test";
/// Pebble's certificate lifetime here, in seconds (its config's
/// certificateValidityPeriod): short, so renewal happens within the test.
const VALIDITY_SECS: u64 = 60;

/// A child process stopped when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits for `service` to listen on `port`: `Err` if it exits first (a port
/// handed out free may be taken again before it binds: by another test, or
/// as some connection's ephemeral port) or takes longer than 20 s.
fn wait_for_port(service: &mut Service, port: u16, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = service.0.try_wait() {
            return Err(format!(
                "{what} exited ({status}) before listening on port {port}"
            ));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("{what} did not listen on port {port} within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// pebble and its DNS, on loopback ports of their own, validating names
/// against tlsdiag's `http_port` (HTTP-01) and `https_port` (TLS-ALPN-01).
struct Pebble {
    _dns: Service,
    _ca: Service,
    directory: String,
    management: SocketAddr,
    /// The CA that signed pebble's own HTTPS certificate (for --acme-ca-bundle).
    https_ca: std::path::PathBuf,
}

impl Pebble {
    /// Starts pebble on fresh ports, again on others if a port was taken
    /// before it could bind one (what pebble then said is in `pebble.log`).
    fn start(dir: &Path, http_port: u16, https_port: u16) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(dir, http_port, https_port) {
                Ok(pebble) => return pebble,
                Err(why) => failures.push(why),
            }
        }
        let log = std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default();
        panic!("pebble did not start in three tries: {failures:?}\npebble.log:\n{log}");
    }

    fn try_start(dir: &Path, http_port: u16, https_port: u16) -> Result<Self, String> {
        let dns_port = free_port();
        let dns = Service(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{}", free_port())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pebble-challtestsrv"),
        );
        // pebble's own HTTPS certificate, from a CA of the test's.
        let ca = TestCa::new("pebble WFE test CA");
        let wfe = ca.leaf("pebble", &["127.0.0.1", "localhost"], 7);
        let https_ca = dir.join("pebble-wfe-ca.pem");
        std::fs::write(&https_ca, &ca.pem).expect("write");
        std::fs::write(dir.join("pebble-cert.pem"), &wfe.cert_pem).expect("write");
        std::fs::write(dir.join("pebble-key.pem"), &wfe.key_pem).expect("write");
        let (api, management) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{api}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.join("pebble-cert.pem"),
                "privateKey": dir.join("pebble-key.pem"),
                "httpPort": http_port,
                "tlsPort": https_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": VALIDITY_SECS,
            }
        });
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let log = std::fs::File::create(dir.join("pebble.log")).expect("log file");
        let mut ca_process = Service(
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                // Validation stays on (no PEBBLE_VA_ALWAYS_VALID); only its
                // random sleeps and deliberate nonce rejections are off.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                // Every order validated afresh, renewals included.
                .env("PEBBLE_AUTHZREUSE", "0")
                .env_remove("PEBBLE_VA_ALWAYS_VALID")
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start pebble"),
        );
        wait_for_port(&mut ca_process, api, "pebble")?;
        wait_for_port(&mut ca_process, management, "pebble's management interface")?;
        Ok(Self {
            _dns: dns,
            _ca: ca_process,
            directory: format!("https://127.0.0.1:{api}/dir"),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            https_ca,
        })
    }

    /// A PEM document from pebble's management interface (`/roots/0`,
    /// `/intermediates/0`).
    async fn management_pem(&self, path: &str) -> String {
        let config = common::client_config_trusting(&self.https_ca, &["http/1.1"]);
        let body = common::https_get(self.management, config, "127.0.0.1", path, &[]).await;
        assert!(body.contains("BEGIN CERTIFICATE"), "{path}: {body}");
        body
    }
}

/// The chain a TLS client verifying against pebble's root gets for DOMAIN,
/// or the handshake error while pebble's certificate is not served yet.
async fn served_chain(
    addr: SocketAddr,
    trusting_pebble: Arc<rustls::ClientConfig>,
) -> Result<Vec<Vec<u8>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(trusting_pebble)
        .connect(ServerName::try_from(DOMAIN).expect("name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// Waits up to `limit` for a verified chain whose leaf serial is not `old`.
async fn wait_for_pebble_leaf(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    old: Option<&str>,
    limit: Duration,
    server: &Tlsdiag,
) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut last;
    loop {
        match served_chain(addr, config.clone()).await {
            Ok(chain) if Some(cn_and_serial(&chain[0]).1.as_str()) != old => return chain,
            Ok(_) => last = "still the old serial".into(),
            Err(e) => last = e,
        }
        if start.elapsed() > limit {
            panic!(
                "no new pebble certificate within {limit:?} ({last}); tlsdiag log:\n{}",
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .as_ref()
        .to_vec()
}

fn subject_and_issuer(der: &[u8]) -> (String, String) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
    (cert.subject().to_string(), cert.issuer().to_string())
}

fn san_dns_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_string());
            }
        }
    }
    names
}

fn tlsdiag_args<'a>(
    ports: &'a (String, String),
    pebble: &'a Pebble,
    dir: &'a Path,
    challenge: &'a str,
) -> Vec<String> {
    vec![
        "--https-addr".into(),
        ports.0.clone(),
        "--http-addr".into(),
        ports.1.clone(),
        "--acme-directory".into(),
        pebble.directory.clone(),
        "--acme-domain".into(),
        DOMAIN.into(),
        "--acme-contact".into(),
        "mailto:ops@tlsdiag.test".into(),
        "--acme-ca-bundle".into(),
        pebble.https_ca.display().to_string(),
        "--acme-challenge".into(),
        challenge.into(),
        // 45 s of a 60 s lifetime: renewal 15 s after issuance.
        "--acme-renew-before".into(),
        "45s".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--certs-dir".into(),
        dir.join("certs").display().to_string(),
    ]
}

fn start_tlsdiag(args: &[String]) -> Tlsdiag {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Tlsdiag::start(&args)
}

fn have_pebble() -> bool {
    common::require_tool("pebble") & common::require_tool("pebble-challtestsrv")
}

#[tokio::test(flavor = "multi_thread")]
async fn http01_certificate_from_pebble_is_served_renewed_and_kept_across_restarts() {
    if !have_pebble() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (https_port, http_port) = (free_port(), free_port());
    let ports = (
        format!("127.0.0.1:{https_port}"),
        format!("127.0.0.1:{http_port}"),
    );
    let pebble = Pebble::start(dir.path(), http_port, https_port);
    let args = tlsdiag_args(&ports, &pebble, dir.path(), "http-01");
    let mut server = start_tlsdiag(&args);

    let root = pebble.management_pem("/roots/0").await;
    let intermediate = pem_der(&pebble.management_pem("/intermediates/0").await);
    let root_path = dir.path().join("pebble-root.pem");
    std::fs::write(&root_path, &root).expect("write root");
    let trusting_pebble = common::client_config_trusting(&root_path, &["http/1.1"]);

    // Issued: the served leaf verifies against pebble's root for our name,
    // and was signed by pebble's intermediate.
    let chain = wait_for_pebble_leaf(
        server.https,
        &trusting_pebble,
        None,
        Duration::from_secs(60),
        &server,
    )
    .await;
    let (intermediate_subject, _) = subject_and_issuer(&intermediate);
    let (_, leaf_issuer) = subject_and_issuer(&chain[0]);
    assert_eq!(leaf_issuer, intermediate_subject);
    assert_eq!(san_dns_names(&chain[0]), vec![DOMAIN.to_owned()]);
    let first_serial = cn_and_serial(&chain[0]).1;

    // Renewed while the same process keeps serving.
    let renewed = wait_for_pebble_leaf(
        server.https,
        &trusting_pebble,
        Some(&first_serial),
        Duration::from_secs(VALIDITY_SECS + 30),
        &server,
    )
    .await;
    assert!(server.running(), "the server must stay up across renewal");
    assert_eq!(subject_and_issuer(&renewed[0]).1, intermediate_subject);
    let second_serial = cn_and_serial(&renewed[0]).1;
    assert_ne!(second_serial, first_serial);
    assert_eq!(
        server.log().matches("created an ACME account").count(),
        1,
        "one account for both orders"
    );

    // State under the data directory: a restart serves the saved
    // certificate at once and reuses the account.
    let acme_dirs: Vec<_> = std::fs::read_dir(dir.path().join("data/acme"))
        .expect("data/acme exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(acme_dirs.len(), 1, "{acme_dirs:?}");
    for file in ["account.json", "cert.pem", "key.pem"] {
        assert!(acme_dirs[0].join(file).exists(), "{file} missing");
    }
    drop(server);
    let restarted = start_tlsdiag(&args);
    let chain = served_chain(restarted.https, trusting_pebble.clone())
        .await
        .unwrap_or_else(|e| panic!("the saved certificate is not served at once: {e}"));
    assert_eq!(subject_and_issuer(&chain[0]).1, intermediate_subject);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !restarted.log().contains("created an ACME account"),
        "the saved account must be reused:\n{}",
        restarted.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn01_certificate_from_pebble_is_served() {
    if !have_pebble() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (https_port, http_port) = (free_port(), free_port());
    let ports = (
        format!("127.0.0.1:{https_port}"),
        format!("127.0.0.1:{http_port}"),
    );
    let pebble = Pebble::start(dir.path(), http_port, https_port);
    let server = start_tlsdiag(&tlsdiag_args(&ports, &pebble, dir.path(), "tls-alpn-01"));
    let root_path = dir.path().join("pebble-root.pem");
    std::fs::write(&root_path, pebble.management_pem("/roots/0").await).expect("write root");
    let intermediate = pem_der(&pebble.management_pem("/intermediates/0").await);
    let trusting_pebble = common::client_config_trusting(&root_path, &["http/1.1"]);
    let chain = wait_for_pebble_leaf(
        server.https,
        &trusting_pebble,
        None,
        Duration::from_secs(60),
        &server,
    )
    .await;
    assert_eq!(
        subject_and_issuer(&chain[0]).1,
        subject_and_issuer(&intermediate).0
    );
    // Pebble's validators reached the HTTPS listener asking for acme-tls/1:
    // those handshakes are in tlsdiag's own record of attempts.
    let attempts =
        common::http_get_from(server.http, [127, 0, 0, 1].into(), "/api/v1/attempts").await;
    assert!(attempts.contains("acme-tls/1"), "{attempts}");
}
