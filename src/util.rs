//! Small helpers shared by several modules: time formatting and number display.

use std::time::SystemTime;

/// Serializes a `SystemTime` as RFC 3339 UTC with millisecond precision.
pub fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// Reads back what [`rfc3339`] wrote.
pub fn parse_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
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
/// (which could move the cursor or recolour the screen) become `\u{..}` escapes.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
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
    fn wraps_at_the_width() {
        let text = "one two three four five six seven eight nine ten";
        for line in wrap(text, 20, "  ").lines() {
            assert!(line.len() <= 20, "{line:?}");
            assert!(line.starts_with("  "));
        }
    }
}
