//! Rendering through the router itself (no sockets): client-controlled values
//! are escaped in HTML and defanged in text.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::Request;
use tlsdiag::attempt::{Arrival, Outcome, TlsAttempt};
use tlsdiag::hello::parse_client_hello;
use tlsdiag::profile::ServerProfile;
use tlsdiag::web::{router, AppState, ConnectionContext};
use tower::ServiceExt;

const HOSTILE_SNI: &str = "<script>alert(1)</script>\u{1b}[31m.example";
const HOSTILE_UA: &str = "<img src=x onerror=alert(2)>";

/// A TLS 1.3 ClientHello whose SNI and ALPN carry markup.
fn hostile_hello() -> Vec<u8> {
    fn vec16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend(b);
        v
    }
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend(vec16(&[0x13, 0x01]));
    body.extend([1, 0]);
    let mut sni = vec![0];
    sni.extend(vec16(HOSTILE_SNI.as_bytes()));
    let alpn_name = b"<b>h2</b>";
    let mut alpn = vec![alpn_name.len() as u8];
    alpn.extend(alpn_name);
    let mut exts = Vec::new();
    for (kind, data) in [(0u16, vec16(&sni)), (16, vec16(&alpn)), (43, vec![2, 3, 4])] {
        exts.extend(kind.to_be_bytes());
        exts.extend(vec16(&data));
    }
    body.extend(vec16(&exts));
    let mut hs = vec![1, 0];
    hs.extend((body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut wire = vec![0x16, 0x03, 0x01];
    wire.extend(vec16(&hs));
    wire
}

fn app() -> (tlsdiag::web::App, ConnectionContext) {
    let raw = hostile_hello();
    let hello = parse_client_hello(&raw).expect("hostile hello parses");
    let attempt = TlsAttempt {
        id: 1,
        peer: SocketAddr::from(([192, 0, 2, 1], 40000)),
        local: SocketAddr::from(([127, 0, 0, 1], 8443)),
        started_at: SystemTime::now(),
        arrival: Arrival {
            bytes: raw.len(),
            read_count: 1,
            reads: vec![],
            capture_ms: 0.1,
        },
        fingerprint_cache: Default::default(),
        client_hello: Some(hello),
        raw,
        negotiated: None,
        handshake_ms: None,
        outcome: Outcome::Completed,
        syn: None,
        tcp: None,
        handshake_flight: None,
        after_handshake: Default::default(),
        icmp_probe: None,
        first_request: Default::default(),
        run: Default::default(),
        our_mss: None,
        seen_by: None,
        balancer: None,
    };
    let profile = ServerProfile {
        served_names: vec!["localhost".into()],
        ..Default::default()
    };
    (
        router(AppState::new(Arc::new(profile), Default::default())),
        ConnectionContext::Tls(Arc::new(attempt)),
    )
}

async fn get(accept: &str) -> String {
    let (app, context) = app();
    let mut request = Request::get("/")
        .header("accept", accept)
        .header("user-agent", HOSTILE_UA)
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(context);
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn html_escapes_sni_alpn_and_user_agent() {
    let html = get("text/html").await;
    assert!(!html.contains("<script>alert"), "raw SNI in HTML");
    assert!(!html.contains("<img src=x"), "raw User-Agent in HTML");
    assert!(!html.contains("<b>h2</b>"), "raw ALPN in HTML");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped SNI missing"
    );
    assert!(
        html.contains("onerror=alert(2)"),
        "the User-Agent is shown (escaped)"
    );
}

#[tokio::test]
async fn text_defangs_terminal_escapes() {
    let text = get("text/plain").await;
    assert!(!text.contains('\u{1b}'), "raw ESC reached the terminal");
    assert!(text.contains("\\u{1b}[31m"), "{text}");
    assert!(
        text.contains("<script>alert(1)</script>\\u{1b}[31m.example"),
        "SNI shown as text"
    );
}

#[tokio::test]
async fn json_carries_the_values_verbatim() {
    let json: serde_json::Value = serde_json::from_str(&get("application/json").await).unwrap();
    assert_eq!(json["tls"]["client_hello"]["sni"], HOSTILE_SNI);
    assert_eq!(json["connection"]["user_agent"], HOSTILE_UA);
    let findings: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(findings.contains(&"tls.sni-not-served"), "{findings:?}");
}

/// Every answer, a page or a 404 from the fallback, carries the headers that
/// keep a report page from being framed, sniffed or leaking its unguessable
/// address to another site through Referer.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    for path in ["/", "/healthz", "/no-such-page"] {
        let (app, context) = app();
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        request.extensions_mut().insert(context);
        let response = app.oneshot(request).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    }
}
