//! Throughput of the download probe on loopback: `cargo bench --bench probe_download`.
//!
//! Starts the real server in-process, then fetches `/probe/down/1048576` over
//! one keep-alive HTTP/1.1 connection (plain and TLS) as fast as it can, and
//! prints the rate. The bar (issue 4) is 1 GB/s for the plain 1 MiB probe.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const SIZE: usize = 1 << 20;
const ROUNDS: usize = 2000;

async fn fetch_many<S: AsyncRead + AsyncWrite + Unpin>(stream: S, rounds: usize) -> Duration {
    let mut stream = BufReader::with_capacity(256 * 1024, stream);
    let request = format!("GET /probe/down/{SIZE} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut body = vec![0u8; SIZE];
    let start = Instant::now();
    for _ in 0..rounds {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        let mut length = 0;
        loop {
            line.clear();
            stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                length = v.trim().parse().unwrap();
            }
        }
        assert_eq!(length, SIZE);
        stream.read_exact(&mut body).await.unwrap();
    }
    start.elapsed()
}

fn report(what: &str, elapsed: Duration, rounds: usize) {
    let bytes = (SIZE * rounds) as f64;
    println!(
        "{what:<28} {rounds} x 1 MiB in {:>7.1} ms: {:>6.2} GB/s ({:.0} probes/s)",
        elapsed.as_secs_f64() * 1000.0,
        bytes / elapsed.as_secs_f64() / 1e9,
        rounds as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = tlsdiag::config::Config::for_tests(dir.path().join("certs"));
    let server = tlsdiag::server::Server::bind(config).await.unwrap();
    let (http, https, cert) = (
        server.http_addr(),
        server.https_addr(),
        server.cert_path().to_path_buf(),
    );
    tokio::spawn(server.run(std::future::pending()));

    // Warm up, then measure.
    fetch_many(TcpStream::connect(http).await.unwrap(), 50).await;
    let plain = fetch_many(TcpStream::connect(http).await.unwrap(), ROUNDS).await;
    report("plain HTTP/1.1, loopback", plain, ROUNDS);

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, TcpStream::connect(https).await.unwrap())
        .await
        .unwrap();
    let rounds = ROUNDS / 4;
    let elapsed = fetch_many(tls, rounds).await;
    report("HTTPS (TLS 1.3), loopback", elapsed, rounds);
}
