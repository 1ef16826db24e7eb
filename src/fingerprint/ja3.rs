//! JA3 (github.com/salesforce/ja3): the decimal values of
//! `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`,
//! each list `-`-joined in wire order with GREASE (RFC 8701) removed, then MD5.
//! `SSLVersion` is the ClientHello's legacy_version; empty lists stay empty.

use std::fmt::Write;

use md5::{Digest, Md5};

use crate::hello::wire::is_grease;
use crate::hello::ClientHello;

pub fn ja3_string(hello: &ClientHello) -> String {
    let ciphers = join(hello.cipher_suites.iter().map(|c| c.0));
    let extensions = join(hello.extensions.iter().map(|e| e.kind.0));
    let groups = join(hello.supported_groups().iter().map(|g| g.0));
    let formats = hello
        .ec_point_formats()
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join("-");
    format!(
        "{},{ciphers},{extensions},{groups},{formats}",
        hello.legacy_version.0
    )
}

pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn join(values: impl Iterator<Item = u16>) -> String {
    values
        .filter(|v| !is_grease(*v))
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in JA3's README: this string hashes to this MD5.
    #[test]
    fn md5_matches_the_published_example() {
        assert_eq!(
            md5_hex("769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"),
            "ada70206e40642a3e4461f35503241d5"
        );
    }
}
