//! Just enough JSON for this bench: pull numbers out of the swarm's report
//! by key, and write our own report. No serde: the shapes are small, fixed
//! and ours.

/// The number at `path` (each step a key, searched for in order, so
/// `["rtt_us", "p50"]` finds `p50` inside `rtt_us`), or None.
pub fn number(json: &str, path: &[&str]) -> Option<f64> {
    let mut rest = json;
    for key in path {
        rest = after_key(rest, key)?;
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The string value of `key` (escapes other than `\"` and `\\` kept as
/// written), or None when absent, null or not a string.
pub fn text(json: &str, key: &str) -> Option<String> {
    let rest = after_key(json, key)?.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                e => {
                    out.push('\\');
                    out.push(e);
                }
            },
            c => out.push(c),
        }
    }
    None
}

/// The text after `"key":`, skipping occurrences of `"key"` that are values.
fn after_key<'a>(mut text: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    loop {
        let at = text.find(&quoted)?;
        text = &text[at + quoted.len()..];
        if let Some(value) = text.trim_start().strip_prefix(':') {
            return Some(value.trim_start());
        }
    }
}

/// A JSON string literal (lubdub's own writer of them).
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    lubdub::swarm::json::write_string(&mut out, text);
    out
}

/// A JSON number; NaN and infinities (which JSON lacks) become null.
pub fn float(value: f64) -> String {
    if value.is_finite() {
        if value == value.trunc() && value.abs() < 1e15 {
            format!("{}", value as i64)
        } else {
            format!("{value:.6}")
        }
    } else {
        "null".to_string()
    }
}

/// Checks of the extractor and writer, run by `-- --self-test` (a
/// `harness = false` bench has no `#[test]` runner).
pub fn self_test() {
    {
        let j = r#"{"target":"127.0.0.1:1","connected": 100,"peak_connected":101,
            "replies":5,"replies_per_s":2.5e3,"missing_replies":0,
            "rtt_us":{"p50":41,"p99":120.5,"max":-1}}"#;
        assert_eq!(number(j, &["connected"]), Some(100.0));
        assert_eq!(number(j, &["peak_connected"]), Some(101.0));
        assert_eq!(number(j, &["replies"]), Some(5.0));
        assert_eq!(number(j, &["replies_per_s"]), Some(2500.0));
        assert_eq!(number(j, &["rtt_us", "p99"]), Some(120.5));
        assert_eq!(number(j, &["rtt_us", "max"]), Some(-1.0));
        assert_eq!(number(j, &["target"]), None);
        assert_eq!(number(j, &["absent"]), None);
        assert_eq!(
            number(r#"{"a":"connected","connected":3}"#, &["connected"]),
            Some(3.0)
        );
        let f = r#"{"ok":false,"failure":"only 7 of \"10\"","x":null}"#;
        assert_eq!(text(f, "failure").as_deref(), Some(r#"only 7 of "10""#));
        assert_eq!(text(f, "x"), None);
    }
    {
        assert_eq!(string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(float(3.0), "3");
        assert_eq!(float(0.5), "0.500000");
        assert_eq!(float(f64::NAN), "null");
    }
}
