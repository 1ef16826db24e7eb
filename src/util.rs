//! Small helpers shared by several modules: time formatting and number display.

use std::time::SystemTime;

/// Serializes a `SystemTime` as RFC 3339 UTC with millisecond precision.
pub fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// [`rfc3339`] for an optional time (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
        None => s.serialize_none(),
    }
}

/// Reads back what [`rfc3339_opt`] wrote.
pub fn parse_rfc3339_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SystemTime>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    text.map(|t| humantime::parse_rfc3339(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Reads back what [`rfc3339`] wrote.
pub fn parse_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

/// The time of day of `t` in UTC, `14:02:11 UTC`: local time is unknowable
/// here, and findings name moments of the same day.
pub fn clock(t: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(t).to_string();
    stamp.get(11..19).unwrap_or(&stamp).to_owned() + " UTC"
}

/// `1913` -> `"1,913"`: byte counts in prose read better grouped.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Makes a peer-controlled string safe for a terminal: control characters
/// (which could move the cursor or recolour the screen) and invisible or
/// direction-changing ones (which could make text read differently from what
/// it is, CVE-2021-42574) become `\u{..}` escapes.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Format characters that change how the text around them displays, or that
/// show nothing at all: bidirectional embeddings, overrides and isolates,
/// zero-width characters, the BOM, and the like.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{061C}'                // Arabic letter mark
        | '\u{115F}' | '\u{1160}'   // Hangul fillers
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'   // embeddings and overrides
        | '\u{2060}'..='\u{206F}'   // word joiner, isolates, deprecated formats
        | '\u{3164}'                // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'   // variation selectors
        | '\u{FEFF}'                // BOM / zero-width no-break space
        | '\u{FFA0}'                // halfwidth Hangul filler
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// `name` if it is a well-formed DNS hostname (letters, digits, `-` and `_`
/// in dot-separated labels of 1 to 63, 253 in all), safe to put in a command.
pub fn hostname(name: &str) -> Option<&str> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 253
        && trimmed.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

/// Greedy word wrap to `width` columns, each line prefixed by `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    wrap_hanging(text, width, indent, indent)
}

/// Word wrap with a different prefix for the first line (`- `, `Fix: `) than
/// for the lines that continue it.
pub fn wrap_hanging(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut indent = first;
    for word in text.split_whitespace() {
        if !line.is_empty()
            && indent.chars().count() + line.chars().count() + 1 + word.chars().count() > width
        {
            out.push_str(indent);
            indent = rest;
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1913), "1,913");
        assert_eq!(thousands(1048576), "1,048,576");
    }

    #[test]
    fn escapes_terminal_control_characters() {
        assert_eq!(printable("a\x1b[31mb"), "a\\u{1b}[31mb");
    }

    #[test]
    fn escapes_bidi_overrides_and_invisible_characters() {
        // "evil\u{202E}txt.exe" would display as "evilexe.txt".
        assert_eq!(printable("evil\u{202E}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("a\u{2066}b\u{200B}c"), "a\\u{2066}b\\u{200b}c");
        assert_eq!(printable("caf\u{e9} \u{4e2d}"), "caf\u{e9} \u{4e2d}");
    }

    #[test]
    fn only_well_formed_hostnames_pass() {
        assert_eq!(hostname("www.example.com"), Some("www.example.com"));
        assert_eq!(hostname("a_b.example."), Some("a_b.example."));
        for bad in [
            "a.example;curl${IFS}x|sh;#",
            "",
            "-x.example",
            "a..b",
            "$(id)",
            "a b",
            "\u{202E}x",
        ] {
            assert_eq!(hostname(bad), None, "{bad:?}");
        }
        assert_eq!(hostname(&"a".repeat(64)), None);
    }

    #[test]
    fn wraps_at_the_width() {
        let text = "one two three four five six seven eight nine ten";
        for line in wrap(text, 20, "  ").lines() {
            assert!(line.len() <= 20, "{line:?}");
            assert!(line.starts_with("  "));
        }
    }
}
