//! Two ClientHellos side by side: which parts of their JA4 differ, and, when
//! both were kept whole, the lists behind the hashes (cipher suites, groups,
//! key shares, signature schemes, extensions added, removed or reordered).
//! GREASE values (RFC 8701) are random per connection and left out of every
//! comparison. Pure.

use crate::hello::wire::{CipherSuite, ExtensionType, NamedGroup, SignatureScheme};
use crate::hello::ClientHello;
use crate::util::thousands;

/// Which parts of two JA4 fingerprints (FoxIO: `t13d1516h2_<ciphers>_<extensions>`)
/// differ, in words: "cipher count 31 vs 15", "ALPN h2 vs h1", ...
pub fn ja4_parts(a: &str, b: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (Some((a_head, a_rest)), Some((b_head, b_rest))) = (a.split_once('_'), b.split_once('_'))
    else {
        return out;
    };
    let field = |s: &str, r: std::ops::Range<usize>| s.get(r).unwrap_or("").to_owned();
    if a_head.len() == 10 && b_head.len() == 10 {
        let named = [
            (0..1, "transport"),
            (1..3, "TLS version"),
            (3..4, "SNI (d: a name, i: none)"),
            (4..6, "cipher count"),
            (6..8, "extension count"),
            (8..10, "ALPN"),
        ];
        for (range, name) in named {
            let (x, y) = (field(a_head, range.clone()), field(b_head, range));
            if x != y {
                out.push(format!("{name} {x} vs {y}"));
            }
        }
    }
    let (a_ciphers, a_ext) = a_rest.split_once('_').unwrap_or((a_rest, ""));
    let (b_ciphers, b_ext) = b_rest.split_once('_').unwrap_or((b_rest, ""));
    if a_ciphers != b_ciphers {
        out.push("the cipher suites offered".to_owned());
    }
    if a_ext != b_ext {
        out.push("the extensions or signature schemes offered".to_owned());
    }
    out
}

/// Items of one list in `b` and not in `a` (added), the reverse (removed),
/// and whether the shared items come in another order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDiff<T> {
    pub added: Vec<T>,
    pub removed: Vec<T>,
    pub reordered: bool,
}

impl<T: PartialEq + Copy> ListDiff<T> {
    pub fn of(a: &[T], b: &[T]) -> Self {
        let added: Vec<T> = b.iter().filter(|x| !a.contains(x)).copied().collect();
        let removed: Vec<T> = a.iter().filter(|x| !b.contains(x)).copied().collect();
        let shared_a: Vec<T> = a.iter().filter(|x| b.contains(x)).copied().collect();
        let shared_b: Vec<T> = b.iter().filter(|x| a.contains(x)).copied().collect();
        Self {
            added,
            removed,
            reordered: shared_a != shared_b,
        }
    }

    pub fn same(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && !self.reordered
    }
}

impl<T: std::fmt::Display> ListDiff<T> {
    /// "B adds x, y; B lacks z; the rest in another order" (`b` names B).
    pub fn words(&self, a: &str, b: &str) -> String {
        let list = |items: &[T]| {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("only {b} offers {}", list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("only {a} offers {}", list(&self.removed)));
        }
        if self.reordered {
            parts.push("the shared ones come in another order".to_owned());
        }
        if parts.is_empty() {
            "the same".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// The lists of two whole ClientHellos, compared.
#[derive(Debug, Clone)]
pub struct HelloDiff {
    pub ciphers: ListDiff<CipherSuite>,
    pub groups: ListDiff<NamedGroup>,
    pub key_shares: ListDiff<NamedGroup>,
    pub signature_schemes: ListDiff<SignatureScheme>,
    pub extensions: ListDiff<ExtensionType>,
}

impl HelloDiff {
    pub fn of(a: &ClientHello, b: &ClientHello) -> Self {
        Self {
            ciphers: ListDiff::of(&ciphers(a), &ciphers(b)),
            groups: ListDiff::of(&groups(a), &groups(b)),
            key_shares: ListDiff::of(&key_share_groups(a), &key_share_groups(b)),
            signature_schemes: ListDiff::of(&schemes(a), &schemes(b)),
            extensions: ListDiff::of(&extensions(a), &extensions(b)),
        }
    }
}

pub fn ciphers(h: &ClientHello) -> Vec<CipherSuite> {
    h.cipher_suites
        .iter()
        .copied()
        .filter(|c| !c.is_grease())
        .collect()
}

pub fn groups(h: &ClientHello) -> Vec<NamedGroup> {
    h.supported_groups()
        .iter()
        .copied()
        .filter(|g| !g.is_grease())
        .collect()
}

pub fn key_share_groups(h: &ClientHello) -> Vec<NamedGroup> {
    h.key_shares()
        .iter()
        .map(|k| k.group)
        .filter(|g| !g.is_grease())
        .collect()
}

pub fn schemes(h: &ClientHello) -> Vec<SignatureScheme> {
    h.signature_algorithms()
        .iter()
        .copied()
        .filter(|s| !s.is_grease())
        .collect()
}

pub fn extensions(h: &ClientHello) -> Vec<ExtensionType> {
    h.extensions
        .iter()
        .map(|e| e.kind)
        .filter(|k| !k.is_grease())
        .collect()
}

/// "X25519MLKEM768 (1,216 bytes, post-quantum), x25519 (32 bytes)".
pub fn key_share_words(h: &ClientHello) -> String {
    let shares: Vec<String> = h
        .key_shares()
        .iter()
        .filter(|k| !k.group.is_grease())
        .map(|k| {
            format!(
                "{} ({} bytes{})",
                k.group,
                thousands(k.key_exchange_length),
                if k.group.is_post_quantum() {
                    ", post-quantum"
                } else {
                    ""
                }
            )
        })
        .collect();
    if shares.is_empty() {
        "none".to_owned()
    } else {
        shares.join(", ")
    }
}

/// The post-quantum key share a hello offers, if any, and its size.
pub fn post_quantum_share(h: &ClientHello) -> Option<(NamedGroup, usize)> {
    h.key_shares()
        .iter()
        .find(|k| k.group.is_post_quantum())
        .map(|k| (k.group, k.key_exchange_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> ClientHello {
        let path = format!(
            "{}/tests/fixtures/hellos/{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        crate::hello::parse_client_hello(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn names_the_ja4_parts_that_differ() {
        let parts = ja4_parts(
            "t13d3112h2_e8f1e7e78f70_6bebaf5329ec",
            "t13d1516h2_8daaf6152771_02713d6af862",
        );
        assert_eq!(
            parts,
            [
                "cipher count 31 vs 15",
                "extension count 12 vs 16",
                "the cipher suites offered",
                "the extensions or signature schemes offered"
            ]
        );
        assert!(ja4_parts("t13d1516h2_a_b", "t13d1516h2_a_b").is_empty());
        assert_eq!(ja4_parts("t13i1516h2_a_b", "t13d1516h1_a_b").len(), 2);
        // Not JA4 at all: nothing to say, no panic.
        assert!(ja4_parts("x", "t13d1516h2_a_b").is_empty());
    }

    #[test]
    fn lists_what_one_hello_offers_and_the_other_does_not() {
        let chromium = fixture("chromium_pq");
        let curl = fixture("curl_openssl3");
        let diff = HelloDiff::of(&curl, &chromium);
        assert!(diff.key_shares.added.contains(&NamedGroup::X25519MLKEM768));
        assert!(!diff.key_shares.removed.contains(&NamedGroup::X25519));
        assert!(!diff.ciphers.same());
        assert!(post_quantum_share(&chromium).is_some());
        assert!(post_quantum_share(&curl).is_none());
        assert!(key_share_words(&chromium).contains("X25519MLKEM768 (1,216 bytes, post-quantum)"));
        // GREASE never counts as a difference.
        let again = HelloDiff::of(&chromium, &chromium);
        assert!(again.ciphers.same() && again.extensions.same() && again.groups.same());
    }

    #[test]
    fn tells_a_reordering_from_a_change() {
        let d = ListDiff::of(&[1, 2, 3], &[3, 2, 1]);
        assert!(d.added.is_empty() && d.removed.is_empty() && d.reordered);
        let d = ListDiff::of(&[1, 2], &[1, 2, 4]);
        assert_eq!(d.added, [4]);
        assert!(!d.reordered);
        assert_eq!(d.words("A", "B"), "only B offers 4");
    }
}
