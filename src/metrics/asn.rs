//! The operator's IP-to-AS table: the iptoasn.com TSV format
//! (`range_start  range_end  AS_number  country_code  AS_description`,
//! tab-separated, IPv4 and IPv6 rows in one file), parsed into sorted,
//! disjoint ranges and looked up by binary search. Pure: reading the file and
//! watching it for changes is `feed`'s job.
//!
//! The file is untrusted text as far as the exposition format is concerned:
//! AS names lose control characters and are cut to [`MAX_NAME_CHARS`] here,
//! and the encoder escapes what is left.

use std::collections::HashMap;
use std::net::IpAddr;

/// Rows kept at most: the full iptoasn combined file has under a million.
pub const MAX_RANGES: usize = 4_000_000;
/// Largest file read (the combined file is ~30 MB uncompressed).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// AS names are cut to this many characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a table was refused (the previous one, if any, stays in use).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("the ranges starting at {first} and {second} overlap")]
    Overlap { first: IpAddr, second: IpAddr },
    #[error("more than {MAX_RANGES} ranges")]
    TooManyRanges,
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("no usable range (an empty or truncated file?)")]
    Empty,
    #[error("cannot read the file: {0}")]
    Io(String),
}

#[derive(Debug, Clone, Copy)]
struct Range<T> {
    start: T,
    end: T,
    asn: u32,
}

/// A loaded table.
#[derive(Debug, Default)]
pub struct AsTable {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    /// The first description seen for each AS, sanitized.
    names: HashMap<u32, Box<str>>,
}

impl AsTable {
    /// Parses a whole file. Blank lines and `#` comments are skipped, as are
    /// rows for AS 0 (iptoasn's "Not routed"): those addresses fall back to
    /// their prefix like any address the table lacks.
    pub fn parse(bytes: &[u8]) -> Result<Self, TableError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(TableError::TooLarge);
        }
        let mut table = AsTable::default();
        for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = n + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.iter().all(u8::is_ascii_whitespace) || raw.first() == Some(&b'#') {
                continue;
            }
            let bad = |reason| TableError::Line { line, reason };
            let mut fields = raw.split(|&b| b == b'\t');
            let mut next = |what| {
                fields
                    .next()
                    .and_then(|f| std::str::from_utf8(f).ok())
                    .map(str::trim)
                    .ok_or_else(|| bad(what))
            };
            let start: IpAddr = next("missing range_start")?
                .parse()
                .map_err(|_| bad("range_start is not an IP address"))?;
            let end: IpAddr = next("missing range_end")?
                .parse()
                .map_err(|_| bad("range_end is not an IP address"))?;
            let asn_text = next("missing AS_number")?;
            let asn: u32 = asn_text
                .strip_prefix("AS")
                .unwrap_or(asn_text)
                .parse()
                .map_err(|_| bad("AS_number is not a number"))?;
            let _country = fields.next();
            let name = fields.next().map(String::from_utf8_lossy);
            if table.v4.len() + table.v6.len() >= MAX_RANGES {
                return Err(TableError::TooManyRanges);
            }
            match (start, end) {
                (IpAddr::V4(s), IpAddr::V4(e)) => {
                    let (start, end) = (u32::from(s), u32::from(e));
                    if start > end {
                        return Err(bad("range_start is after range_end"));
                    }
                    if asn != 0 {
                        table.v4.push(Range { start, end, asn });
                    }
                }
                (IpAddr::V6(s), IpAddr::V6(e)) => {
                    let (start, end) = (u128::from(s), u128::from(e));
                    if start > end {
                        return Err(bad("range_start is after range_end"));
                    }
                    if asn != 0 {
                        table.v6.push(Range { start, end, asn });
                    }
                }
                _ => return Err(bad("range_start and range_end are of different families")),
            }
            if asn != 0 && !table.names.contains_key(&asn) {
                let name = name.map(|n| sanitize_name(&n)).unwrap_or_default();
                table.names.insert(asn, name.into_boxed_str());
            }
        }
        if table.v4.is_empty() && table.v6.is_empty() {
            return Err(TableError::Empty);
        }
        table.v4.sort_unstable_by_key(|r| r.start);
        table.v6.sort_unstable_by_key(|r| r.start);
        disjoint(&table.v4, |v| IpAddr::from(std::net::Ipv4Addr::from(v)))?;
        disjoint(&table.v6, |v| IpAddr::from(std::net::Ipv6Addr::from(v)))?;
        table.v4.shrink_to_fit();
        table.v6.shrink_to_fit();
        table.names.shrink_to_fit();
        Ok(table)
    }

    /// The AS announcing `ip`, if the table has it: a binary search, no
    /// allocation. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => find(&self.v6, u128::from(v6)),
        }
    }

    /// The AS's description from the file (sanitized; empty when it had none).
    pub fn name(&self, asn: u32) -> &str {
        self.names.get(&asn).map_or("", |n| n)
    }

    /// Ranges held, both families.
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

fn find<T: Copy + Ord>(ranges: &[Range<T>], ip: T) -> Option<u32> {
    let after = ranges.partition_point(|r| r.start <= ip);
    let candidate = ranges.get(after.checked_sub(1)?)?;
    (ip <= candidate.end).then_some(candidate.asn)
}

fn disjoint<T: Copy + Ord>(
    ranges: &[Range<T>],
    addr: impl Fn(T) -> IpAddr,
) -> Result<(), TableError> {
    match ranges.windows(2).find(|w| w[1].start <= w[0].end) {
        Some(w) => Err(TableError::Overlap {
            first: addr(w[0].start),
            second: addr(w[1].start),
        }),
        None => Ok(()),
    }
}

/// Control characters become spaces, runs of spaces one, at most
/// [`MAX_NAME_CHARS`] characters; iptoasn's "Not routed" placeholder is no name.
fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for c in raw.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        if chars == MAX_NAME_CHARS {
            break;
        }
        out.push(c);
        chars += 1;
    }
    let out = out.trim_end().to_owned();
    if out == "Not routed" {
        String::new()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET
1.0.1.0\t1.0.3.255\t0\tNone\tNot routed
1.0.4.0\t1.0.7.255\t38803\tAU\tWPL-AS-AP Wirefreebroadband Pty Ltd
2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64500\tZZ\tDOC\x1b[31m\tEXAMPLE
::1\t::1\t64501\tZZ\tLOOP
";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn finds_the_range_and_nothing_between_ranges() {
        let t = AsTable::parse(SAMPLE.as_bytes()).expect("parses");
        assert_eq!(t.ranges(), 4);
        assert_eq!(t.lookup(ip("1.0.0.0")), Some(13335));
        assert_eq!(t.lookup(ip("1.0.0.255")), Some(13335));
        assert_eq!(t.lookup(ip("1.0.2.1")), None, "AS 0 is not routed");
        assert_eq!(t.lookup(ip("1.0.7.255")), Some(38803));
        assert_eq!(t.lookup(ip("1.0.8.0")), None);
        assert_eq!(t.lookup(ip("0.255.255.255")), None);
        assert_eq!(t.lookup(ip("2001:db8:1::5")), Some(64500));
        assert_eq!(t.lookup(ip("::1")), Some(64501));
        assert_eq!(t.lookup(ip("::2")), None);
        assert_eq!(t.lookup(ip("::ffff:1.0.0.7")), Some(13335));
        assert_eq!(t.name(13335), "CLOUDFLARENET");
        assert_eq!(t.name(1), "");
    }

    #[test]
    fn names_lose_control_characters_and_are_cut() {
        let t = AsTable::parse(SAMPLE.as_bytes()).expect("parses");
        // The escape byte becomes a space; the tab ended the field.
        assert_eq!(t.name(64500), "DOC [31m");
        let long = format!("9.0.0.0\t9.0.0.1\t7\tZZ\t{}\n", "x".repeat(500));
        let t = AsTable::parse(long.as_bytes()).expect("parses");
        assert_eq!(t.name(7).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn bad_files_say_where() {
        let cases: [(&str, TableError); 5] = [
            (
                "1.0.0.0\t1.0.0.255\n",
                TableError::Line {
                    line: 1,
                    reason: "missing AS_number",
                },
            ),
            (
                "# header\n1.0.0.0\tnope\t5\n",
                TableError::Line {
                    line: 2,
                    reason: "range_end is not an IP address",
                },
            ),
            (
                "1.0.0.9\t1.0.0.1\t5\n",
                TableError::Line {
                    line: 1,
                    reason: "range_start is after range_end",
                },
            ),
            (
                "1.0.0.0\t::1\t5\n",
                TableError::Line {
                    line: 1,
                    reason: "range_start and range_end are of different families",
                },
            ),
            ("\n# nothing\n", TableError::Empty),
        ];
        for (text, want) in cases {
            assert_eq!(
                AsTable::parse(text.as_bytes()).err(),
                Some(want),
                "{text:?}"
            );
        }
        assert_eq!(
            AsTable::parse(b"1.0.0.0\t1.0.0.10\t5\n1.0.0.10\t1.0.0.20\t6\n").err(),
            Some(TableError::Overlap {
                first: ip("1.0.0.0"),
                second: ip("1.0.0.10")
            })
        );
        assert!(AsTable::parse(b"\xff\xfe\x00garbage").is_err());
    }

    #[test]
    fn crlf_and_as_prefixed_numbers_are_accepted() {
        let t = AsTable::parse(b"198.18.0.0\t198.18.0.255\tAS64500\tZZ\tX\r\n").expect("parses");
        assert_eq!(t.lookup(ip("198.18.0.7")), Some(64500));
        assert_eq!(t.name(64500), "X");
    }
}
