//! Which client a User-Agent claims to be: a browser family or a known tool,
//! with its major version. Only families whose ClientHello traits we know are
//! named (see `client_traits`); anything else claims nothing.
//!
//! The order of the checks follows how these strings are built: every
//! Chromium-based browser also says "Safari", Edge and Opera also say
//! "Chrome", and browsers on iOS say "Safari" whatever their name, because
//! they must use Apple's networking.

use std::fmt;

/// A family of clients that share one TLS stack and its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Chrome, Chromium, headless Chrome, Edge, Opera, Brave, Samsung
    /// Internet, Android WebView: Chromium's network stack over BoringSSL.
    Chromium,
    /// Firefox on desktop and Android: NSS.
    Firefox,
    /// Safari, and every browser on iOS (Apple requires its WebKit).
    Safari,
    Curl,
    Wget,
    /// Python's urllib, requests, httpx, aiohttp.
    Python,
    /// Node.js (fetch / undici).
    Node,
    /// Go's net/http.
    Go,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Chromium => "Chrome",
            Family::Firefox => "Firefox",
            Family::Safari => "Safari",
            Family::Curl => "curl",
            Family::Wget => "Wget",
            Family::Python => "Python",
            Family::Node => "Node.js",
            Family::Go => "Go",
        }
    }

    pub fn is_browser(self) -> bool {
        matches!(self, Family::Chromium | Family::Firefox | Family::Safari)
    }
}

/// What the User-Agent says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub family: Family,
    /// The product as named in the User-Agent (`HeadlessChrome`, `Edg`, ...).
    pub product: &'static str,
    /// Major version, when the User-Agent gives one.
    pub major: Option<u32>,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.product)?;
        // A browser's version decides its traits; a tool's is mostly noise.
        match self.major {
            Some(major) if self.family.is_browser() => write!(f, " {major}"),
            _ => Ok(()),
        }?;
        Ok(())
    }
}

/// The client a User-Agent claims to be, if it is one we know.
pub fn claim(user_agent: &str) -> Option<Claim> {
    // iOS browsers run on Apple's stack whatever they call themselves.
    for ios in ["CriOS/", "FxiOS/", "EdgiOS/", "OPiOS/"] {
        if user_agent.contains(ios) {
            return Some(Claim {
                family: Family::Safari,
                product: "Safari",
                major: None,
            });
        }
    }
    let products: [(&str, Family, &'static str); 12] = [
        ("Edg/", Family::Chromium, "Edge"),
        ("OPR/", Family::Chromium, "Opera"),
        ("HeadlessChrome/", Family::Chromium, "HeadlessChrome"),
        ("Chrome/", Family::Chromium, "Chrome"),
        ("Chromium/", Family::Chromium, "Chromium"),
        ("Firefox/", Family::Firefox, "Firefox"),
        ("curl/", Family::Curl, "curl"),
        ("Wget/", Family::Wget, "Wget"),
        ("Python-urllib/", Family::Python, "Python-urllib"),
        ("python-requests/", Family::Python, "python-requests"),
        ("Go-http-client/", Family::Go, "Go-http-client"),
        ("node", Family::Node, "node"),
    ];
    for (token, family, product) in products {
        if let Some(at) = user_agent.find(token) {
            // Every Chromium product carries "Chrome/NNN"; its version is
            // the engine's, which is what the traits depend on.
            let major = match family {
                Family::Chromium => version_after(user_agent, "Chrome/")
                    .or_else(|| version_after(user_agent, token)),
                _ => version_after(&user_agent[at..], token),
            };
            if family == Family::Node && !is_node(user_agent) {
                continue;
            }
            return Some(Claim {
                family,
                product,
                major,
            });
        }
    }
    for (token, product) in [("python-httpx/", "python-httpx"), ("aiohttp/", "aiohttp")] {
        if user_agent.contains(token) {
            return Some(Claim {
                family: Family::Python,
                product,
                major: None,
            });
        }
    }
    if user_agent.contains("Safari/") && user_agent.contains("Version/") {
        return Some(Claim {
            family: Family::Safari,
            product: "Safari",
            major: version_after(user_agent, "Version/"),
        });
    }
    None
}

/// Node's fetch says exactly `node` (undici says `undici`); a longer string
/// that merely contains "node" is someone else.
fn is_node(user_agent: &str) -> bool {
    matches!(user_agent.trim(), "node" | "undici") || user_agent.starts_with("node/")
}

/// The major version number right after `token`, if any.
fn version_after(text: &str, token: &str) -> Option<u32> {
    let rest = &text[text.find(token)? + token.len()..];
    let digits: &str = &rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())];
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ua: &str) -> Option<(Family, &'static str, Option<u32>)> {
        claim(ua).map(|c| (c.family, c.product, c.major))
    }

    #[test]
    fn names_the_families_from_real_user_agents() {
        // Strings as these clients send them (Chromium 156's headless one is
        // what tests/browser.rs sees).
        assert_eq!(
            c("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"),
            Some((Family::Chromium, "HeadlessChrome", Some(156)))
        );
        assert_eq!(
            c("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"),
            Some((Family::Chromium, "Edge", Some(131)))
        );
        assert_eq!(
            c("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            Some((Family::Firefox, "Firefox", Some(133)))
        );
        assert_eq!(
            c("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
            Some((Family::Safari, "Safari", Some(18)))
        );
        assert_eq!(
            c("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"),
            Some((Family::Safari, "Safari", None))
        );
        assert_eq!(c("curl/7.88.1"), Some((Family::Curl, "curl", Some(7))));
        assert_eq!(c("Wget/1.21.3"), Some((Family::Wget, "Wget", Some(1))));
        assert_eq!(
            c("Python-urllib/3.11"),
            Some((Family::Python, "Python-urllib", Some(3)))
        );
        assert_eq!(c("node"), Some((Family::Node, "node", None)));
        assert_eq!(
            c("Go-http-client/2.0"),
            Some((Family::Go, "Go-http-client", Some(2)))
        );
    }

    #[test]
    fn claims_nothing_for_unknown_or_odd_strings() {
        assert_eq!(c(""), None);
        assert_eq!(c("Mozilla/5.0 (compatible; Googlebot/2.1)"), None);
        assert_eq!(c("my-nodejs-crawler/1.0"), None);
        assert_eq!(c("Chrome/"), Some((Family::Chromium, "Chrome", None)));
        assert_eq!(
            c("Chrome/99999999999999999999"),
            Some((Family::Chromium, "Chrome", None))
        );
    }
}
