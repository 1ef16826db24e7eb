//! JA3 (github.com/salesforce/ja3): the decimal values of
//! `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`,
//! each list `-`-joined in wire order with GREASE (RFC 8701) removed, then MD5.
//! `SSLVersion` is the ClientHello's legacy_version; empty lists stay empty.

use md5::{Digest, Md5};

use crate::hello::wire::is_grease;
use crate::hello::ClientHello;

pub fn ja3_string(hello: &ClientHello) -> String {
    let ciphers = join(hello.cipher_suites.iter().map(|c| c.0));
    let extensions = join(hello.extensions.iter().map(|e| e.kind.0));
    let groups = join(hello.supported_groups().iter().map(|g| g.0));
    let formats = join(hello.ec_point_formats().iter().map(|&f| u16::from(f)));
    format!(
        "{},{ciphers},{extensions},{groups},{formats}",
        hello.legacy_version.0
    )
}

pub fn md5_hex(text: &str) -> String {
    crate::hello::model::to_hex(&Md5::digest(text.as_bytes()))
}

fn join(values: impl Iterator<Item = u16>) -> String {
    // Digits pushed by hand, with no string per value: this runs on every
    // completed handshake.
    let mut out = String::new();
    for v in values.filter(|v| !is_grease(*v)) {
        if !out.is_empty() {
            out.push('-');
        }
        push_decimal(&mut out, v);
    }
    out
}

fn push_decimal(out: &mut String, v: u16) {
    let mut digits = [0u8; 5];
    let mut n = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
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
