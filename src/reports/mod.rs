//! Shareable reports: where a finished run's report is kept, by unguessable
//! id. The document itself is [`crate::report::RunReport`]: this module stores
//! its JSON and knows nothing of its shape.
//!
//! - [`store`]: the storage trait and its SQLite implementation (WAL, versioned
//!   migrations in `migrations/`, retention and a size cap).
//!
//! A report is written once and never changed. The JSON stored is exactly what
//! `/api/v1/reports/{id}` returns, so what support reads a day later is what
//! the customer's run produced.

pub mod store;

pub use store::{ReportMeta, ReportStore, SqliteReportStore, StoreError, StoredReport};

/// A new report id: 16 bytes from the OS's CSPRNG, as 32 lowercase hex
/// characters (128 bits: unguessable, and the only way to reach a report).
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(crate::hello::model::to_hex(&bytes))
}

/// Report ids as `new_id` makes them; anything else is not looked up.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The report id in what someone pasted: the id itself, or a link that
/// ends in one (`https://host/r/<id>`, with or without a query), in any case.
pub fn id_in(text: &str) -> Option<String> {
    /// Longer than any link to a report.
    const MAX_PASTE: usize = 2048;
    let text = text.trim();
    if text.len() > MAX_PASTE {
        return None;
    }
    text.split(|c: char| matches!(c, '/' | '?' | '#' | '&' | '=') || c.is_whitespace())
        .rev()
        .map(str::to_ascii_lowercase)
        .find(|part| valid_id(part))
}

/// A support case label: 1 to 64 of `[A-Za-z0-9._:-]`. Strict on purpose: it
/// is shown to support and used in filters, and markup has no business in it.
pub fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_random_bits() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert!(valid_id(&a) && valid_id(&b));
        assert_ne!(a, b);
        assert!(!valid_id("../../etc/passwd"));
    }

    #[test]
    fn finds_the_id_in_a_pasted_link_or_on_its_own() {
        let id = "0123456789abcdef0123456789abcdef";
        for pasted in [
            id.to_owned(),
            format!("  {id}\n"),
            format!("http://192.0.2.1:8080/r/{id}"),
            format!("https://diag.example/r/{}?format=text", id.to_uppercase()),
            format!("https://diag.example/api/v1/reports/{id}#top"),
        ] {
            assert_eq!(id_in(&pasted).as_deref(), Some(id), "{pasted:?}");
        }
        for junk in ["", "r/123", "https://diag.example/r/", &"a".repeat(4000)] {
            assert_eq!(id_in(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn labels_are_plain() {
        assert!(valid_label("ACME-1234"));
        assert!(!valid_label("<b>ACME</b>"));
        assert!(!valid_label(""));
        assert!(!valid_label(&"x".repeat(65)));
    }
}
