//! Which test run a connection belongs to, as the connection itself proved
//! it: an HTTPS request on it carried the run's id (`?run=`, every request
//! the page and check.sh make), or its ClientHello named the run (check.sh's
//! ClientHello size ladder offers the ALPN protocol `tlsdiag-<run>`).
//!
//! Learned once, after the attempt is recorded (like the first request's
//! facts): the first request that names a run sets it, and a report reads it.
//! Attempts that carried no request (stuck, failed, rescued) have none; the
//! run's attribution decides about them from evidence
//! (`diagnose::attribution`).

use std::sync::OnceLock;

use serde::{Serialize, Serializer};

use crate::hello::ClientHello;

/// The ALPN prefix check.sh's ClientHello ladder puts before its run id.
pub const HELLO_LADDER_ALPN_PREFIX: &[u8] = b"tlsdiag-";

/// Bytes a run id may have (`probe::valid_run_id`): what the store charges
/// for the tag from the start, whether it ever arrives or not.
pub const MAX_RUN_ID_BYTES: usize = 64;

/// The run a connection's requests named, once one did.
#[derive(Debug, Clone, Default)]
pub struct RunTag(OnceLock<Box<str>>);

impl RunTag {
    /// Keeps `run` unless a request named a run before. The caller has
    /// checked it is a valid run id.
    pub fn learn(&self, run: &str) {
        if self.0.get().is_none() {
            let _ = self.0.set(run.into());
        }
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(|r| &**r)
    }

    /// A tag rebuilt from a stored record.
    pub fn known(run: Option<String>) -> Self {
        match run {
            Some(run) => Self(OnceLock::from(run.into_boxed_str())),
            None => Self::default(),
        }
    }
}

impl Serialize for RunTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

/// The run check.sh's ClientHello ladder named in `hello`'s ALPN list, if
/// any: `tlsdiag-<run>` with a valid run id.
pub fn named_in_hello(hello: &ClientHello) -> Option<&str> {
    hello.alpn().iter().find_map(|p| {
        let id = p.raw.strip_prefix(HELLO_LADDER_ALPN_PREFIX)?;
        let id = std::str::from_utf8(id).ok()?;
        crate::probe::valid_run_id(id).then_some(id)
    })
}

/// The run a request's query string names (`run=<id>`), if it is a valid run
/// id. Percent-encoding is not decoded: a valid id never needs it.
pub fn named_in_query(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("run="))
        .filter(|id| crate::probe::valid_run_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_run_named() {
        let tag = RunTag::default();
        assert_eq!(tag.get(), None);
        tag.learn("firstrun01");
        tag.learn("secondrun02");
        assert_eq!(tag.get(), Some("firstrun01"));
        assert_eq!(
            RunTag::known(Some("storedrun1".into())).get(),
            Some("storedrun1")
        );
    }

    #[test]
    fn reads_the_run_from_a_query() {
        assert_eq!(named_in_query("run=AbC123xyz&size=5"), Some("AbC123xyz"));
        assert_eq!(named_in_query("size=5&run=AbC123xyz"), Some("AbC123xyz"));
        assert_eq!(named_in_query("run=short"), None);
        assert_eq!(named_in_query("run=has%20space1"), None);
        assert_eq!(named_in_query("xrun=AbC123xyz"), None);
    }
}
