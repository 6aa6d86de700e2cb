//! Whether output has the shape a block shows (see the crate docs): digits,
//! durations, runs of spaces and `…` as wildcards, the rest exact, lines in
//! order.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tok {
    Char(char),
    Digits,
    /// Digits and a time unit: a duration measured in the run, which the
    /// program prints in whichever unit it comes out whole (`3s`, `3001ms`).
    Duration,
    Space,
    Any,
}

/// Time units as durations are printed, longest first.
const UNITS: [&str; 6] = ["ms", "us", "µs", "s", "m", "h"];

/// The length of the time unit at the start of `text`, if one ends there.
fn unit_len(text: &[char]) -> Option<usize> {
    UNITS.iter().find_map(|u| {
        let n = u.chars().count();
        let ends = text
            .get(n)
            .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'));
        (text.len() >= n && text[..n].iter().copied().eq(u.chars()) && ends).then_some(n)
    })
}

pub fn tokens(pattern: &str) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let t = match c {
            '0'..='9' => {
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                match unit_len(&chars[i..]) {
                    Some(n) => {
                        i += n;
                        Tok::Duration
                    }
                    None => Tok::Digits,
                }
            }
            ' ' | '\t' => Tok::Space,
            '…' => Tok::Any,
            c => Tok::Char(c),
        };
        if t == Tok::Space && out.last() == Some(&t) {
            continue;
        }
        out.push(t);
    }
    out
}

pub fn matches_at(pattern: &[Tok], text: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return text.is_empty();
    };
    let run = |pred: fn(&char) -> bool| text.iter().take_while(|c| pred(c)).count();
    match first {
        Tok::Char(c) => text.first() == Some(&c) && matches_at(rest, &text[1..]),
        Tok::Digits => {
            let n = run(char::is_ascii_digit);
            (1..=n).rev().any(|k| matches_at(rest, &text[k..]))
        }
        Tok::Duration => {
            let n = run(char::is_ascii_digit);
            n > 0 && unit_len(&text[n..]).is_some_and(|u| matches_at(rest, &text[n + u..]))
        }
        Tok::Space => {
            let n = run(|c| c.is_whitespace());
            (1..=n).rev().any(|k| matches_at(rest, &text[k..]))
        }
        Tok::Any => (0..=text.len()).any(|k| matches_at(rest, &text[k..])),
    }
}

/// Whether `actual` has the shape of `expected` (see the module docs). A
/// log line's time may be cut or shortened in the docs: where the expected
/// line has a log prefix (`TIME [LEVEL] `), the levels must be the same and
/// the messages match; where it has none, its message alone is compared.
pub fn line_matches(expected: &str, actual: &str) -> bool {
    let shape = |pattern: &str, text: &str| {
        matches_at(
            &tokens(pattern.trim()),
            &text.trim().chars().collect::<Vec<_>>(),
        )
    };
    if shape(expected, actual) {
        return true;
    }
    match (log_prefix(expected), log_prefix(actual)) {
        (Some((level, message)), Some((actual_level, actual_message))) => {
            level == actual_level && shape(message, actual_message)
        }
        (None, Some((_, actual_message))) => shape(expected, actual_message),
        _ => false,
    }
}

/// A log line's level and message: `… [INFO] message` → ("INFO", "message").
pub fn log_prefix(line: &str) -> Option<(&str, &str)> {
    let (prefix, message) = line.split_once("] ")?;
    let level = prefix.rsplit_once('[')?.1;
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .contains(&level)
        .then_some((level, message))
}

/// `expected`'s non-blank lines, in order, among `actual`'s; or what is
/// missing, with the output.
pub fn in_order(expected: &[String], actual: &[String]) -> Result<(), String> {
    let mut at = 0;
    let mut lines: Vec<&String> = expected.iter().filter(|l| !l.trim().is_empty()).collect();
    // A line repeated with only its digits changed stands for one or more
    // such lines: how many retries fit in a wait is the machine's.
    lines.dedup_by(|b, a| tokens(b) == tokens(a));
    for line in lines {
        match actual[at..].iter().position(|a| line_matches(line, a)) {
            Some(k) => at += k + 1,
            None => {
                return Err(format!(
                "no line of this shape (after the lines matched before it):\n  {line}\noutput:\n{}",
                actual.join("\n")
            ))
            }
        }
    }
    Ok(())
}

#[test]
fn the_matcher_takes_digits_and_spaces_as_wildcards_and_the_rest_exactly() {
    assert!(line_matches(
        "   5.0s  1000/1000 up  p99 1244us",
        "  10.0s  999/1000 up  p99 31us"
    ));
    assert!(line_matches(
        "listening on 0.0.0.0:8898 interval=100ms …",
        "listening on 127.0.0.1:40123 interval=100ms misses=3"
    ));
    assert!(!line_matches(
        "result:      ok",
        "result:      failed: 3 late"
    ));
    // A duration is any duration, in any unit; a unit is not a word.
    assert!(line_matches(
        "server silent for 3s",
        "server silent for 3001ms"
    ));
    assert!(line_matches("p99 1244us", "p99 31us"));
    assert!(!line_matches("interval=100ms", "interval=100 ms"));
    assert!(!line_matches("3 sent", "3s"));
    assert!(!line_matches("in 5s", "in 5sec"));
    assert!(!line_matches("p99 1244us", "p99 us"));
    assert!(in_order(
        &["a 1".into(), "c 2".into()],
        &["a 10".into(), "b".into(), "c 3".into()]
    )
    .is_ok());
    assert!(in_order(&["c 2".into(), "a 1".into()], &["a 1".into(), "c 2".into()]).is_err());
    // Times shortened in the docs; the level must still be the same.
    assert!(line_matches(
        "17:02:58.840 [INFO] connected to 127.0.0.1:8898",
        "2026-12-06T00:47:13.544357362Z [INFO] connected to 127.0.0.1:41234"
    ));
    assert!(!line_matches(
        "17:02:58.840 [INFO] connected to 127.0.0.1:8898",
        "2026-12-06T00:47:13.544357362Z [WARN] connected to 127.0.0.1:41234"
    ));
    // A retry shown twice is one or more.
    let retried: Vec<String> = vec![
        "a".into(),
        "retry in 1s".into(),
        "retry in 2s".into(),
        "b".into(),
    ];
    assert!(in_order(&retried, &["a".into(), "retry in 3s".into(), "b".into()]).is_ok());
    assert!(in_order(&retried, &["a".into(), "b".into()]).is_err());
}
