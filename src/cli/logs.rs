//! Log lines on stderr, as text (simplelog) or as JSON (`--log-format
//! json`): one object per line,
//!
//! ```text
//! {"time":"2026-12-06T00:41:43.123456Z","level":"info","event":"closed","peer":"127.0.0.1:50712","conn":"0#0","fields":{"reason":"protocol_errors"},"msg":"protocol error: …"}
//! ```
//!
//! The JSON is read off the text of the line, by the convention every
//! lubdub line follows: it opens with a word that names the event (a
//! colon after it is dropped), and says what it can as `key=value` pairs.
//! `peer=` and `conn=` become the object's own `peer` and `conn` (`null`
//! when the line has none), the other pairs its `fields` (integers and
//! decimals as JSON numbers, `true` and `false` as booleans, anything else
//! as strings, a quoted value without its quotes), and what is left — the free text, in its order —
//! its `msg` (left out when there is none). A line that does not open with
//! a word has the event `message`. Nothing of a line is dropped but the
//! spaces between the parts and the punctuation that ends a value
//! (`conn=0#0:`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME [LEVEL] message`, for people.
    #[default]
    Text,
    /// One JSON object per line, for programs.
    Json,
}

/// The format chosen at start, for the code that writes to stderr
/// besides the logger (relayed worker lines, the swarm's status line).
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether log lines are JSON.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Logs to stderr at `level` in `format`.
pub fn init(level: LevelFilter, format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    match format {
        LogFormat::Text => {
            let config = simplelog::ConfigBuilder::new()
                .set_time_format_rfc3339()
                .set_target_level(LevelFilter::Off)
                .set_thread_level(LevelFilter::Off)
                .build();
            let _ = simplelog::TermLogger::init(
                level,
                config,
                simplelog::TerminalMode::Stderr,
                simplelog::ColorChoice::Never,
            );
        }
        LogFormat::Json => {
            if log::set_boxed_logger(Box::new(JsonLogger { level })).is_ok() {
                log::set_max_level(level);
            }
        }
    }
}

struct JsonLogger {
    level: LevelFilter,
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let level = record.level().as_str().to_ascii_lowercase();
        let mut line = line(&now(), &level, &message);
        line.push('\n');
        // One write per line, so that lines from several processes sharing
        // the pipe do not interleave inside a line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The JSON object (without a newline) for a line `message` at `level`
/// and `time` (see the module docs).
pub fn line(time: &str, level: &str, message: &str) -> String {
    let parts = Parts::of(message);
    let mut out = String::with_capacity(message.len() + 96);
    out.push_str("{\"time\":");
    string(&mut out, time);
    out.push_str(",\"level\":");
    string(&mut out, level);
    out.push_str(",\"event\":");
    string(&mut out, parts.event);
    for (key, value) in [("peer", parts.peer), ("conn", parts.conn)] {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        match value {
            Some(v) => string(&mut out, v),
            None => out.push_str("null"),
        }
    }
    out.push_str(",\"fields\":{");
    for (i, (key, value)) in parts.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, key);
        out.push(':');
        if is_number(value) || *value == "true" || *value == "false" {
            out.push_str(value);
        } else {
            string(&mut out, value);
        }
    }
    out.push('}');
    if !parts.msg.is_empty() {
        out.push_str(",\"msg\":");
        string(&mut out, &parts.msg);
    }
    out.push('}');
    out
}

/// A line of `event` whose fields are the JSON object `fields` (made by
/// the caller, such as a swarm status line's own JSON).
pub fn object(level: &str, event: &str, fields: &str) -> String {
    let mut out = String::with_capacity(fields.len() + 96);
    out.push_str("{\"time\":");
    string(&mut out, &now());
    out.push_str(",\"level\":");
    string(&mut out, level);
    out.push_str(",\"event\":");
    string(&mut out, event);
    out.push_str(",\"peer\":null,\"conn\":null,\"fields\":");
    out.push_str(fields);
    out.push('}');
    out
}

/// A fatal error as a line: event `error`, the error its `msg`.
pub fn fatal(what: &str) -> String {
    let mut out = object("error", "error", "{}");
    out.pop();
    out.push_str(",\"msg\":");
    string(&mut out, what);
    out.push('}');
    out
}

/// A line relayed from worker `index`: a JSON one gets a `worker` field;
/// anything else the worker wrote (a fatal error, a panic) is made a line
/// of its own, event `worker_output`, so that the stream stays JSON.
pub fn from_worker(index: usize, line: &str) -> String {
    // Only a whole, non-empty object is the worker's own line: anything
    // else (a stray `{}` or a torn line) is wrapped, so the stream stays JSON.
    let own = matches!(
        lubdub::swarm::json::parse(line),
        Ok(lubdub::swarm::json::Value::Object(members)) if !members.is_empty()
    );
    match line.strip_prefix('{') {
        Some(rest) if own => format!("{{\"worker\":{index},{rest}"),
        _ => {
            let mut out = object("error", "worker_output", "{}");
            out.pop();
            out.push_str(",\"worker\":");
            out.push_str(&index.to_string());
            out.push_str(",\"msg\":");
            string(&mut out, line);
            out.push('}');
            out
        }
    }
}

/// A line split by the convention of the module docs.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    event: &'a str,
    peer: Option<&'a str>,
    conn: Option<&'a str>,
    fields: Vec<(&'a str, &'a str)>,
    msg: String,
}

impl<'a> Parts<'a> {
    fn of(message: &'a str) -> Parts<'a> {
        let mut parts = Parts {
            event: "message",
            peer: None,
            conn: None,
            fields: Vec::new(),
            msg: String::new(),
        };
        // The end of the last token that went to `msg`, if the token just
        // before this one did: free text keeps its own spacing.
        let mut text_end = None;
        for (i, (start, token)) in tokens(message).enumerate() {
            if i == 0 {
                if let Some(word) = event_word(token) {
                    parts.event = word;
                    continue;
                }
            }
            if let Some((key, value)) = pair(token) {
                let taken = match key {
                    "peer" if parts.peer.is_none() => {
                        parts.peer = Some(value);
                        true
                    }
                    "conn" if parts.conn.is_none() => {
                        parts.conn = Some(value);
                        true
                    }
                    "peer" | "conn" => false,
                    _ if parts.fields.iter().any(|(k, _)| *k == key) => false,
                    _ => {
                        parts.fields.push((key, value));
                        true
                    }
                };
                if taken {
                    text_end = None;
                    continue;
                }
            }
            match text_end {
                Some(end) => parts.msg.push_str(&message[end..start]),
                None if !parts.msg.is_empty() => parts.msg.push(' '),
                None => {}
            }
            parts.msg.push_str(token);
            text_end = Some(start + token.len());
        }
        parts
    }
}

/// The whitespace-separated tokens of `text`, with where each starts; a
/// double-quoted run (backslash escapes honoured) is part of one token
/// whatever spaces it holds.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == bytes.len() {
            return None;
        }
        let start = at;
        let mut quoted = false;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' if quoted => at += 1,
                b'"' => quoted = !quoted,
                b if b.is_ascii_whitespace() && !quoted => break,
                _ => {}
            }
            at += 1;
        }
        at = at.min(bytes.len());
        Some((start, &text[start..at]))
    })
}

/// A token that names an event: a lowercase word, perhaps hyphenated,
/// perhaps followed by a colon.
fn event_word(token: &str) -> Option<&str> {
    let word = token.strip_suffix(':').unwrap_or(token);
    let ok = word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-');
    ok.then_some(word)
}

/// A `key=value` token: the key a lowercase identifier, the value not
/// empty, without the punctuation that ends it in a sentence, and without
/// its quotes if quoted.
fn pair(token: &str) -> Option<(&str, &str)> {
    let (key, value) = token.split_once('=')?;
    let key_ok = key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !key_ok {
        return None;
    }
    let value = if value.len() >= 2 && value.starts_with('"') {
        let inner = value.trim_end_matches([':', ';', ',']);
        inner.strip_prefix('"')?.strip_suffix('"')?
    } else {
        value.trim_end_matches([':', ';', ','])
    };
    (!value.is_empty()).then_some((key, value))
}

/// A JSON number as this module writes them: an integer or a decimal, no
/// leading zeros, no exponent.
fn is_number(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(all_digits)
}

/// Appends `text` as a JSON string: the crate's one writer of them.
pub fn string(out: &mut String, text: &str) {
    lubdub::swarm::json::write_string(out, text);
}

/// Now, as RFC 3339 in UTC with microseconds.
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_micros())
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn rfc3339(secs: u64, micros: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The `fields` of a JSON line whose event is `stats` or `stopped` (the
/// counters a supervisor sums), with whether it was `stopped`; `None` for
/// any other line. Reads only what [`line`] writes.
pub fn counters(line: &str) -> Option<(bool, Vec<(String, u64)>)> {
    let stopped = if line.contains(",\"event\":\"stats\",") {
        false
    } else if line.contains(",\"event\":\"stopped\",") {
        true
    } else {
        return None;
    };
    let start = line.find(",\"fields\":{")? + ",\"fields\":{".len();
    let mut rest = &line[start..];
    let mut out = Vec::new();
    // Keys are identifiers (no escapes); values numbers or strings.
    while let Some(after) = rest.strip_prefix('"') {
        let (key, after) = after.split_once("\":")?;
        let end = if let Some(s) = after.strip_prefix('"') {
            // Skip a string value, escapes and all.
            let mut escaped = false;
            let close = s.char_indices().find(|&(_, c)| {
                let done = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                done
            })?;
            // The eviction-lateness buckets are a list, `a,b,…`: read as
            // the metrics' reader reads them off a text line.
            if key == "eviction_lateness_buckets" {
                let list = format!("{key}={}", &s[..close.0]);
                out.extend(lubdub::metrics::server::Counters::parse(&list).0);
            }
            1 + close.0 + 1
        } else {
            let end = after.find([',', '}'])?;
            if let Ok(n) = after[..end].parse() {
                out.push((key.to_string(), n));
            }
            end
        };
        rest = &after[end..];
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => break,
        }
    }
    Some((stopped, out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_worker_line_that_is_not_a_whole_object_is_wrapped_and_stays_json() {
        for stray in ["{}", "{\"a\":1", "{not json}", "{\"a\":1}}"] {
            let line = from_worker(3, stray);
            let parsed = lubdub::swarm::json::parse(&line);
            assert!(parsed.is_ok(), "{stray:?} gave {line}");
            assert!(line.contains("\"worker_output\""), "{stray:?} gave {line}");
        }
        let own = from_worker(3, "{\"time\":\"t\",\"level\":\"info\"}");
        assert_eq!(own, "{\"worker\":3,\"time\":\"t\",\"level\":\"info\"}");
    }

    use super::*;

    #[test]
    fn a_line_is_split_into_event_peer_conn_fields_and_msg() {
        let p = Parts::of("evicted peer=127.0.0.1:5000 misses=6 idle=30001ms excused=0ms conn=3#7");
        assert_eq!(p.event, "evicted");
        assert_eq!(p.peer, Some("127.0.0.1:5000"));
        assert_eq!(p.conn, Some("3#7"));
        assert_eq!(
            p.fields,
            [("misses", "6"), ("idle", "30001ms"), ("excused", "0ms")]
        );
        assert_eq!(p.msg, "");

        let p = Parts::of(
            "closed peer=[::1]:9 conn=0#0 reason=protocol_errors: protocol error: frame length 1 is below  the header; \
             the peer sent text, not a frame: \"a=b  c\"",
        );
        assert_eq!(p.event, "closed");
        assert_eq!(p.peer, Some("[::1]:9"));
        assert_eq!(p.conn, Some("0#0"));
        assert_eq!(p.fields, [("reason", "protocol_errors")]);
        // Free text keeps its spacing; a quoted run is text even with an
        // `=` inside.
        assert_eq!(
            p.msg,
            "protocol error: frame length 1 is below  the header; the peer sent text, not a frame: \"a=b  c\""
        );

        let p = Parts::of("stopped: closed listener and 2 connections; active=0 accepted=2");
        assert_eq!(p.event, "stopped");
        assert_eq!(p.msg, "closed listener and 2 connections;");
        assert_eq!(p.fields, [("active", "0"), ("accepted", "2")]);

        let p = Parts::of("Reactor said x=1 x=2");
        assert_eq!(p.event, "message");
        assert_eq!(p.fields, [("x", "1")]);
        assert_eq!(p.msg, "Reactor said x=2");
    }

    #[test]
    fn strings_are_escaped_and_numbers_are_bare() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\te\u{1}f\u{7f}\u{2028}é\u{fffd}");
        assert_eq!(
            out,
            "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\\u2028é\u{fffd}\""
        );
        for n in ["0", "12", "-3", "1.5", "0.25"] {
            assert!(is_number(n), "{n}");
        }
        for s in [
            "", "-", "01", "1.", ".5", "1e3", "12ms", "0x10", "+1", "1.2.3",
        ] {
            assert!(!is_number(s), "{s}");
        }
        let line = line("T", "info", "stats active=3 peak=4 tick=10ms probe=false");
        assert_eq!(
            line,
            "{\"time\":\"T\",\"level\":\"info\",\"event\":\"stats\",\"peer\":null,\"conn\":null,\
             \"fields\":{\"active\":3,\"peak\":4,\"tick\":\"10ms\",\"probe\":false}}"
        );
        assert_eq!(
            counters(&line),
            Some((false, vec![("active".into(), 3), ("peak".into(), 4)]))
        );
        let quoted = super::line("T", "info", "stopped: note=\"a,\\\"b\" x=5");
        assert_eq!(counters(&quoted), Some((true, vec![("x".into(), 5)])));
    }

    #[test]
    fn worker_lines_get_a_worker_field_or_a_line_of_their_own() {
        assert_eq!(
            from_worker(2, "{\"time\":\"T\"}"),
            "{\"worker\":2,\"time\":\"T\"}"
        );
        let wrapped = from_worker(1, "lubdub: \"boom\"");
        assert!(wrapped.starts_with("{\"time\":\""), "{wrapped}");
        assert!(
            wrapped.ends_with(",\"worker\":1,\"msg\":\"lubdub: \\\"boom\\\"\"}"),
            "{wrapped}"
        );
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(1_796_517_703, 999_999),
            "2026-12-06T00:41:43.999999Z"
        );
    }
}
