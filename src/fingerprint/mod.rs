//! TLS client fingerprints computed from a parsed [`ClientHello`]: pure functions,
//! no I/O.
//!
//! - [`ja3`]: Salesforce's JA3 (BSD-3-Clause), string and MD5.
//! - [`ja4`]: FoxIO's JA4 TLS-client fingerprint (BSD-3-Clause) with its raw and
//!   original-order variants.
//!
//! The rest of JA4+ (JA4S, JA4H, JA4T, JA4L, ...) is under FoxIO's non-commercial
//! licence and deliberately not implemented; the report shows the raw facts instead.

pub mod ja3;
pub mod ja4;

use serde::Serialize;

use crate::hello::ClientHello;

/// All fingerprints of one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Fingerprints {
    pub ja3: String,
    pub ja3_md5: String,
    pub ja4: String,
    pub ja4_r: String,
    pub ja4_o: String,
    pub ja4_ro: String,
}

impl Fingerprints {
    pub fn of(hello: &ClientHello) -> Self {
        let ja3 = ja3::ja3_string(hello);
        let ja4 = ja4::Ja4::of(hello, ja4::Transport::Tcp);
        let mut fingerprints = Self {
            ja3_md5: ja3::md5_hex(&ja3),
            ja3,
            ja4: ja4.hashed(),
            ja4_r: ja4.raw(),
            ja4_o: ja4.hashed_original(),
            ja4_ro: ja4.raw_original(),
        };
        // Kept as long as their attempt, and charged by their length
        // (`attempt::footprint::fingerprints`): no spare capacity.
        for text in fingerprints.strings_mut() {
            text.shrink_to_fit();
        }
        fingerprints
    }

    fn strings_mut(&mut self) -> [&mut String; 6] {
        [
            &mut self.ja3,
            &mut self.ja3_md5,
            &mut self.ja4,
            &mut self.ja4_r,
            &mut self.ja4_o,
            &mut self.ja4_ro,
        ]
    }
}
