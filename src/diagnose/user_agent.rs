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
///
/// One pass over the string's `name/version` products (RFC 9110 §10.1.5;
/// words inside comments count too, as some tools put theirs there): a
/// report judges every recent attempt, so this runs many times per page.
pub fn claim(user_agent: &str) -> Option<Claim> {
    let mut best: Option<(usize, &str)> = None;
    let mut chrome_version = None;
    let (mut ios, mut safari, mut safari_version) = (false, false, None);
    let (mut httpx, mut aiohttp) = (false, false);
    for word in user_agent.split([' ', '\t', '(', ')', ';', ',']) {
        let Some((name, version)) = word.split_once('/') else {
            continue;
        };
        match name {
            // iOS browsers run on Apple's stack whatever they call themselves.
            "CriOS" | "FxiOS" | "EdgiOS" | "OPiOS" => ios = true,
            "Safari" => safari = true,
            "Version" => safari_version = Some(version),
            "python-httpx" => httpx = true,
            "aiohttp" => aiohttp = true,
            _ => {}
        }
        if name == "Chrome" {
            chrome_version = Some(version);
        }
        if let Some(rank) = PRODUCTS.iter().position(|(token, ..)| *token == name) {
            if best.is_none_or(|(b, _)| rank < b) {
                best = Some((rank, version));
            }
        }
    }
    if ios {
        return Some(Claim {
            family: Family::Safari,
            product: "Safari",
            major: None,
        });
    }
    if let Some((rank, version)) = best {
        let (_, family, product) = PRODUCTS[rank];
        // Every Chromium product carries "Chrome/NNN"; its version is the
        // engine's, which is what the traits depend on.
        let major = match family {
            Family::Chromium => chrome_version
                .and_then(major_version)
                .or_else(|| major_version(version)),
            _ => major_version(version),
        };
        return Some(Claim {
            family,
            product,
            major,
        });
    }
    if is_node(user_agent) {
        return Some(Claim {
            family: Family::Node,
            product: "node",
            major: None,
        });
    }
    if httpx || aiohttp {
        let product = if httpx { "python-httpx" } else { "aiohttp" };
        return Some(Claim {
            family: Family::Python,
            product,
            major: None,
        });
    }
    (safari && safari_version.is_some()).then(|| Claim {
        family: Family::Safari,
        product: "Safari",
        major: safari_version.and_then(major_version),
    })
}

/// Products whose name alone says the client, most specific first: Edge and
/// Opera also say "Chrome", and every Chromium also says "Safari".
const PRODUCTS: [(&str, Family, &str); 11] = [
    ("Edg", Family::Chromium, "Edge"),
    ("OPR", Family::Chromium, "Opera"),
    ("HeadlessChrome", Family::Chromium, "HeadlessChrome"),
    ("Chrome", Family::Chromium, "Chrome"),
    ("Chromium", Family::Chromium, "Chromium"),
    ("Firefox", Family::Firefox, "Firefox"),
    ("curl", Family::Curl, "curl"),
    ("Wget", Family::Wget, "Wget"),
    ("Python-urllib", Family::Python, "Python-urllib"),
    ("python-requests", Family::Python, "python-requests"),
    ("Go-http-client", Family::Go, "Go-http-client"),
];

/// Node's fetch says exactly `node` (undici says `undici`); a longer string
/// that merely contains "node" is someone else.
fn is_node(user_agent: &str) -> bool {
    matches!(user_agent.trim(), "node" | "undici") || user_agent.starts_with("node/")
}

/// The major version at the start of a product's version, if any.
fn major_version(version: &str) -> Option<u32> {
    let digits = &version[..version
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version.len())];
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
            c("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0"),
            Some((Family::Chromium, "Opera", Some(131)))
        );
        assert_eq!(
            c("python-httpx/0.27.0"),
            Some((Family::Python, "python-httpx", None))
        );
        assert_eq!(
            c("Python/3.12 aiohttp/3.9.5"),
            Some((Family::Python, "aiohttp", None))
        );
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
        // A product is a whole name, not a substring of another one.
        assert_eq!(c("NotChrome/120.0 MyCurl/8.0"), None);
        assert_eq!(c("Chrome/"), Some((Family::Chromium, "Chrome", None)));
        assert_eq!(
            c("Chrome/99999999999999999999"),
            Some((Family::Chromium, "Chrome", None))
        );
    }
}
