//! What the first HTTP request on an HTTPS connection said about its client:
//! the User-Agent, the HTTP version, and any header a proxy adds. The
//! handshake cannot know who is speaking; the request names a client, and a
//! ClientHello that client cannot have sent means something else made the TLS
//! connection (see `diagnose::interception_rules`).
//!
//! Learned once, after the attempt is recorded: the cell is set by the
//! connection's first request and read by every report after it.

use std::sync::OnceLock;

use serde::{Serialize, Serializer};

/// Bytes of a User-Agent kept. Real ones are a few hundred bytes at most;
/// what is kept is charged to the store by its bound, not by what arrived.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Bytes of each proxy header's value kept.
pub const MAX_PROXY_HEADER_BYTES: usize = 256;

/// The headers a forwarding proxy adds to a request it passes on (RFC 9110
/// §7.6.3 `Via`; RFC 7239 `Forwarded`; the de facto `X-Forwarded-For`). A
/// client talking to us directly has no reason to send any of them.
pub const PROXY_HEADERS: [&str; 3] = ["via", "forwarded", "x-forwarded-for"];

/// The facts of one request that say who the client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestFacts {
    /// As sent, cut to [`MAX_USER_AGENT_BYTES`] on a character boundary
    /// (lossy UTF-8; escaped wherever it is shown).
    pub user_agent: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub http_version: String,
    /// The proxy headers present, in [`PROXY_HEADERS`] order, each value cut
    /// to [`MAX_PROXY_HEADER_BYTES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_headers: Vec<ProxyHeader>,
}

/// One proxy header as it arrived (several of one name are joined by ", ").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProxyHeader {
    pub name: String,
    pub value: String,
}

impl RequestFacts {
    /// The facts of a request, bounded whatever it carried.
    pub fn of(headers: &http::HeaderMap, version: http::Version) -> Self {
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .map(|v| bounded(v.as_bytes(), MAX_USER_AGENT_BYTES));
        let proxy_headers = PROXY_HEADERS
            .iter()
            .filter_map(|name| {
                let mut values = headers.get_all(*name).iter().peekable();
                values.peek()?;
                let joined: Vec<u8> = values
                    .map(|v| v.as_bytes())
                    .collect::<Vec<_>>()
                    .join(&b", "[..]);
                Some(ProxyHeader {
                    name: (*name).to_owned(),
                    value: bounded(&joined, MAX_PROXY_HEADER_BYTES),
                })
            })
            .collect();
        Self {
            user_agent,
            http_version: version_name(version).to_owned(),
            proxy_headers,
        }
    }

    /// The most these facts hold in memory, whatever was sent: what the
    /// store charges an attempt before its first request arrives.
    pub const MAX_BYTES: usize = std::mem::size_of::<Self>()
        + MAX_USER_AGENT_BYTES
        + 8 // the version's name
        + PROXY_HEADERS.len()
            * (std::mem::size_of::<ProxyHeader>() + 16 + MAX_PROXY_HEADER_BYTES);
}

/// How a request's version is named in reports.
pub fn version_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// Lossy UTF-8 of at most `max` bytes, cut on a character boundary.
fn bounded(bytes: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if text.len() > max {
        // A replacement character can make the text longer than its bytes.
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text.shrink_to_fit();
    text
}

/// The first request's facts, once it has arrived. Shared by the connection
/// (which sets it) and the attempt record (which reports read).
#[derive(Debug, Clone, Default)]
pub struct FirstRequest(OnceLock<RequestFacts>);

impl FirstRequest {
    /// Keeps `facts` if no request came before; later requests change nothing.
    pub fn learn(&self, facts: impl FnOnce() -> RequestFacts) {
        if self.0.get().is_none() {
            let _ = self.0.set(facts());
        }
    }

    pub fn get(&self) -> Option<&RequestFacts> {
        self.0.get()
    }

    /// A record rebuilt from its facts (saved reports, tests).
    pub fn known(facts: RequestFacts) -> Self {
        Self(OnceLock::from(facts))
    }
}

impl Serialize for FirstRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_request_only() {
        let cell = FirstRequest::default();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::USER_AGENT, "curl/8.5.0".parse().unwrap());
        cell.learn(|| RequestFacts::of(&headers, http::Version::HTTP_2));
        headers.insert(http::header::USER_AGENT, "other".parse().unwrap());
        cell.learn(|| RequestFacts::of(&headers, http::Version::HTTP_11));
        let facts = cell.get().unwrap();
        assert_eq!(facts.user_agent.as_deref(), Some("curl/8.5.0"));
        assert_eq!(facts.http_version, "HTTP/2");
    }

    #[test]
    fn bounds_what_a_client_sends() {
        let mut headers = http::HeaderMap::new();
        let long = "é".repeat(400); // 800 bytes
        headers.insert(http::header::USER_AGENT, long.parse().unwrap());
        headers.append("via", "1.1 a".parse().unwrap());
        headers.append("via", "1.1 b".parse().unwrap());
        headers.insert("x-forwarded-for", "x".repeat(1000).parse().unwrap());
        let facts = RequestFacts::of(&headers, http::Version::HTTP_11);
        let ua = facts.user_agent.unwrap();
        assert!(ua.len() <= MAX_USER_AGENT_BYTES && ua.starts_with('é'));
        assert_eq!(facts.proxy_headers.len(), 2);
        assert_eq!(facts.proxy_headers[0].name, "via");
        assert_eq!(facts.proxy_headers[0].value, "1.1 a, 1.1 b");
        assert_eq!(facts.proxy_headers[1].value.len(), MAX_PROXY_HEADER_BYTES);
    }
}
