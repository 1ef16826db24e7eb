//! Picks the response format: an explicit `?format=` wins, then the `Accept`
//! header's preferences (with q-values), then the User-Agent (command-line
//! clients get text), else HTML.

use axum::http::{header, HeaderMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
}

/// User-Agent prefixes of command-line HTTP clients, which get text by default.
const CLI_AGENTS: &[&str] = &[
    "curl/",
    "wget/",
    "httpie/",
    "xh/",
    "powershell/",
    "libfetch/",
    "fetch libfetch",
];

pub fn negotiate(headers: &HeaderMap, format: Option<&str>) -> Format {
    match format {
        Some("json") => return Format::Json,
        Some("text" | "txt") => return Format::Text,
        Some("html") => return Format::Html,
        _ => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(format) = from_accept(accept) {
        return format;
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if CLI_AGENTS.iter().any(|prefix| agent.starts_with(prefix)) {
        Format::Text
    } else {
        Format::Html
    }
}

/// The most preferred of the types we serve; `None` when Accept expresses no
/// preference among them (absent, or only `*/*`).
fn from_accept(accept: &str) -> Option<Format> {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            "application/json" => Format::Json,
            "text/html" | "application/xhtml+xml" => Format::Html,
            "text/plain" => Format::Text,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(accept: Option<&str>, agent: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        if let Some(a) = agent {
            h.insert(header::USER_AGENT, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn curl_gets_text_unless_it_asks_for_json() {
        assert_eq!(
            negotiate(&headers(Some("*/*"), Some("curl/7.88.1")), None),
            Format::Text
        );
        assert_eq!(
            negotiate(
                &headers(Some("application/json"), Some("curl/7.88.1")),
                None
            ),
            Format::Json
        );
    }

    #[test]
    fn browsers_get_html() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert_eq!(
            negotiate(&headers(Some(chrome), Some("Mozilla/5.0")), None),
            Format::Html
        );
    }

    #[test]
    fn respects_q_values_and_the_query_override() {
        assert_eq!(
            negotiate(&headers(Some("text/html;q=0.5, text/plain"), None), None),
            Format::Text
        );
        assert_eq!(
            negotiate(&headers(Some("text/html"), None), Some("json")),
            Format::Json
        );
    }
}
