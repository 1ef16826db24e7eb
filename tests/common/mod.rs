//! Test helpers: a real tlsdiag server on ephemeral loopback ports, real clients.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tlsdiag::config::Config;
use tlsdiag::server::Server;
use tokio::sync::oneshot;

pub mod browser;
pub mod netns;
pub mod pki;
pub mod postgres;
pub mod process;

/// A running server; stops when dropped.
pub struct TestServer {
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub cert: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(adjust: impl FnOnce(Config) -> Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = adjust(Config::for_tests(dir.path().join("certs")));
        let server = Server::bind(config).await.expect("server binds");
        let (stop, stopped) = oneshot::channel::<()>();
        let (https, http) = (server.https_addr(), server.http_addr());
        let cert = server.cert_path().to_path_buf();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            https,
            http,
            cert,
            _dir: dir,
            stop: Some(stop),
        }
    }

    /// Runs check.sh as a customer would (`curl -s URL/check.sh | sh`) from
    /// this server's plain-HTTP port, with our certificate trusted
    /// (`CURL_CA_BUNDLE`) and no proxy from the environment.
    pub async fn check_sh(&self, case: Option<&str>) -> CheckSh {
        let (http, cert, case) = (self.http, self.cert.clone(), case.map(str::to_owned));
        tokio::task::spawn_blocking(move || run_check_sh(http, &cert, case.as_deref()))
            .await
            .expect("check.sh thread")
    }

    /// A rustls client config (aws-lc-rs defaults: X25519MLKEM768 first) that
    /// trusts this server's certificate.
    pub fn client_config(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        client_config_trusting(&self.cert, alpn)
    }

    /// A saved report's JSON, as `/api/v1/reports/{id}` returns it.
    pub async fn saved_report(&self, id: &str) -> Value {
        json(
            &http_get_from(
                self.http,
                [127, 0, 0, 1].into(),
                &format!("/api/v1/reports/{id}"),
            )
            .await,
        )
    }

    /// The JSON attempts list the plain-HTTP listener shows to `from`.
    pub async fn attempts_from(&self, from: std::net::IpAddr) -> Value {
        let body = http_get_from(self.http, from, "/api/v1/attempts").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("attempts JSON: {e}\n{body}"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn client_config_trusting(cert: &Path, alpn: &[&str]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("pem cert")).expect("add root");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// How the client's first flight (the ClientHello) is put on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// One write.
    Whole,
    /// Two writes: the first `n` bytes, a pause, the rest (a hello split into
    /// two TCP segments, as at MSS `n`).
    SplitAt(usize),
    /// One byte per write, with a short pause after each.
    BytePerWrite,
    /// The handshake message re-framed into two TLS records, split at this
    /// handshake-body offset, then one write.
    TwoRecords(usize),
}

/// The pause between pieces: the network condition under test, not a wait for
/// a result. Long enough for the server to have read the earlier piece.
const PIECE_GAP: Duration = Duration::from_millis(60);

/// Runs a real rustls handshake whose ClientHello is delivered as `delivery`
/// says, then GETs `path` over it. Returns the client's ClientHello bytes (as
/// rustls produced them) and the response body.
pub async fn get_with_delivery(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    sni: &'static str,
    delivery: Delivery,
    path: &str,
) -> (Vec<u8>, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let name = ServerName::try_from(sni).expect("server name");
        let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).expect("first flight");
        }
        match delivery {
            Delivery::Whole => sock.write_all(&hello).expect("write"),
            Delivery::SplitAt(n) => {
                sock.write_all(&hello[..n]).expect("write");
                std::thread::sleep(PIECE_GAP);
                sock.write_all(&hello[n..]).expect("write");
            }
            Delivery::BytePerWrite => {
                for b in &hello {
                    sock.write_all(std::slice::from_ref(b)).expect("write");
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            Delivery::TwoRecords(at) => {
                let body = &hello[5..];
                let mut wire = Vec::new();
                for part in [&body[..at], &body[at..]] {
                    wire.extend([0x16, 0x03, 0x01]);
                    wire.extend((part.len() as u16).to_be_bytes());
                    wire.extend(part);
                }
                sock.write_all(&wire).expect("write");
            }
        }
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tlsdiag-test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("request");
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        (hello, body_of(&response))
    })
    .await
    .expect("client thread")
}

/// GET over TLS with tokio-rustls, HTTP/1.1, `Connection: close`: the body.
pub async fn https_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    sni: &'static str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    body_of(&https_get_raw(addr, config, sni, path, headers).await)
}

/// The same, the whole response (status line and headers included).
pub async fn https_get_raw(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    sni: &'static str,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from(sni).expect("name"), tcp)
        .await
        .expect("handshake");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    response
}

/// GET over plain HTTP from a chosen loopback source address.
pub async fn http_get_from(addr: SocketAddr, from: std::net::IpAddr, path: &str) -> String {
    http_request_from(addr, from, path, &[]).await
}

pub async fn http_request_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind source");
    let mut tcp = socket.connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response).await;
    body_of(&response)
}

/// The body of an HTTP/1.1 response (Content-Length framed, as axum sends).
pub fn body_of(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => panic!("no HTTP response in {} bytes: {text:?}", response.len()),
    }
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Whether an external tool is installed. Outside CI a missing tool skips the
/// test with a message; with CI=true it fails, naming what is missing.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed: .ci/run must install it (apt-get install ...)");
        }
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// Hex ids of a JSON list of wire values (`[{"id": 4865, ...}]`).
pub fn ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v["id"].as_u64().expect("id"))
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs check.sh as a customer would (`curl -s URL/check.sh | sh`) from the
/// plain-HTTP listener at `http`, with `cert` trusted (`CURL_CA_BUNDLE`) and
/// no proxy from the environment.
pub fn run_check_sh(http: SocketAddr, cert: &Path, case: Option<&str>) -> CheckSh {
    let mut url = format!("http://127.0.0.1:{}/check.sh", http.port());
    if let Some(case) = case {
        url.push_str(&format!("?case={case}"));
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("curl -s '{url}' | sh"))
        .env("CURL_CA_BUNDLE", cert)
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .expect("sh runs");
    CheckSh {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// What a check.sh run printed, and whether it exited 0.
#[derive(Debug)]
pub struct CheckSh {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl CheckSh {
    /// The id of the report this run saved, from its "Report link" line (a
    /// finding may cite another report's link above it).
    pub fn report_id(&self) -> Option<String> {
        let link = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Report link (send it to support): "))?;
        Some(link.rsplit('/').next()?.trim().to_owned())
    }
}
