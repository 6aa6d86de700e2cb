//! The oracle: replays the liveness rule from the server's own log lines and
//! the peers' records, and lists every broken promise.
//!
//! - No live peer is closed: one still sending (a frame every interval, or
//!   a churner before its reset) that the server evicts or closes for any
//!   reason is a failure, reported with its sends around the close and the
//!   server's lines near it.
//! - A silent peer (gone quiet, or a trickler whose frames take longer than
//!   the limit) is evicted no earlier than its last complete frame + the
//!   limit — strict: the frame time is taken before the write, the server
//!   stamps on read, after it — and no later than that plus a tick, every
//!   stop and reported stall overlapping the wait, an interval for each
//!   excused stall, and a margin for a shared machine's noise.
//! - Flooders are closed as slow readers (or over budget), never evicted.
//! - The server's own counters agree: one eviction line per eviction and no
//!   eviction that left bytes unread.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::peers::{Kind, Record};
use super::plan::{INTERVAL, LIMIT, TICK};

/// Stalls longer than this count (`max(4 ticks, 50 ms)` at a 10 ms tick).
const THRESHOLD: Duration = Duration::from_millis(50);
/// At most one stall is excused per this much watched time: limit +
/// interval + threshold (docs/liveness.md).
const WINDOW: Duration = Duration::from_millis(600 + 200 + 50);
/// How close to the window a stall may come and be excused either way: the
/// server measures watched time from its own clock readings, the oracle from
/// log timestamps a little later; and the server counts it only up to the
/// start of the segment the stall overran — a sleep in `poll` of up to a
/// threshold before the stop itself — where the oracle, which sees only the
/// stall's length, counts up to `at - length`.
const WINDOW_SLACK: Duration = Duration::from_millis(50 + 50);

/// How long before a stop a frame may be sent and still be read only after
/// it (see `latest_eviction`).
const DELIVERY: i64 = 200_000;
/// How long before a stop a deadline may fall and still be acted on only
/// after it.
const WAKE: i64 = 50_000;

/// Slack above the rule's latest eviction for scheduling noise on a shared
/// two-core machine (debug builds, other test suites running beside).
pub const MARGIN: Duration = Duration::from_millis(300);

/// Maps the server's log timestamps (wall clock) onto the run's clock.
#[derive(Debug, Clone, Copy)]
pub struct WallMap {
    /// Wall-clock microseconds since the epoch at run time 0.
    pub wall0: i64,
    /// How far the wall clock and the monotonic clock drifted apart over
    /// the run, in microseconds: the tolerance of a mapped time.
    pub drift: i64,
}

impl WallMap {
    pub fn wall_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    }

    /// The run time of a log line, from its RFC 3339 timestamp.
    pub fn at(&self, line: &str) -> Option<i64> {
        Some(wall_micros(line)? - self.wall0)
    }
}

/// `2026-12-05T00:14:51.997944922Z ...` as microseconds since the epoch.
fn wall_micros(line: &str) -> Option<i64> {
    let stamp = line.get(..line.find('Z')?)?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec = t.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, "0"));
    let frac_us: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let days = days_from_civil(y, m, day);
    Some(
        ((days * 24 + h) * 60 + min) * 60_000_000
            + whole.parse::<i64>().ok()? * 1_000_000
            + frac_us,
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `key=VALUE` (up to the next space) in a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn ms_field(line: &str, key: &str) -> Option<i64> {
    field(line, key)?.trim_end_matches("ms").parse().ok()
}

/// One eviction, from `evicted peer=ADDR misses=N idle=Xms [excused=Yms] conn=S#N`.
#[derive(Debug, Clone)]
pub struct Eviction {
    pub at: i64,
    pub peer: SocketAddr,
    pub idle_ms: i64,
    pub conn: String,
    pub line: String,
    /// The `eviction evidence` line for the same connection, if logged.
    pub evidence: Option<String>,
}

/// A stall the server reported: it ended at `at` and lasted `ms`.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub at: i64,
    pub ms: i64,
    /// What the server said.
    pub excused: bool,
    /// What the rule says, replayed by the oracle ([`replay_excuses`]).
    pub should_excuse: bool,
}

/// The server's log, parsed.
#[derive(Debug, Default)]
pub struct ServerLog {
    pub lines: Vec<(i64, String)>,
    pub evictions: Vec<Eviction>,
    pub stalls: Vec<Stall>,
}

impl ServerLog {
    pub fn parse(raw: &[String], map: &WallMap) -> ServerLog {
        let mut log = ServerLog::default();
        let mut evidence: Vec<(String, String)> = Vec::new();
        // The peer of each connection, from its accept: what an eviction
        // line without a parseable `peer=` falls back to.
        let mut accepted: std::collections::HashMap<String, SocketAddr> = Default::default();
        for line in raw {
            let Some(at) = map.at(line) else { continue };
            if line.contains("accepted peer=") {
                if let (Some(conn), Some(peer)) = (field(line, "conn"), field(line, "peer")) {
                    if let Ok(peer) = peer.parse() {
                        accepted.insert(conn.to_string(), peer);
                    }
                }
            } else if line.contains("] evicted peer=") {
                let conn = field(line, "conn").unwrap_or("?").to_string();
                let ev = evidence
                    .iter()
                    .rposition(|(c, _)| *c == conn)
                    .map(|i| evidence.swap_remove(i).1);
                log.evictions.push(Eviction {
                    at,
                    peer: field(line, "peer")
                        .and_then(|p| p.parse().ok())
                        .or_else(|| accepted.get(&conn).copied())
                        .unwrap_or_else(|| panic!("no peer in {line:?}")),
                    idle_ms: ms_field(line, "idle")
                        .unwrap_or_else(|| panic!("no idle in {line:?}")),
                    conn,
                    line: line.clone(),
                    evidence: ev,
                });
            } else if line.contains("eviction evidence") {
                let conn = field(line, "conn").unwrap_or("?").to_string();
                evidence.push((conn, line.clone()));
            } else if let Some(rest) = line.split("stalled for ").nth(1) {
                if let Some(ms) = rest.split("ms").next().and_then(|n| n.parse().ok()) {
                    log.stalls.push(Stall {
                        at,
                        ms,
                        excused: !line.contains("not excused"),
                        should_excuse: false,
                    });
                }
            }
            log.lines.push((at, line.clone()));
        }
        log
    }

    /// Replays which stalls the rule excuses — at most one per window of
    /// watched time (the time between stalls) — and returns the stalls the
    /// server excused or refused against it. Within `WINDOW_SLACK` of the
    /// window either answer is right, and the server's is kept.
    pub fn replay_excuses(&mut self) -> Vec<String> {
        let mut wrong = Vec::new();
        let (window, slack) = (WINDOW.as_micros() as i64, WINDOW_SLACK.as_micros() as i64);
        let mut watched: Option<i64> = None;
        let mut last_end: Option<i64> = None;
        for stall in &mut self.stalls {
            let began = stall.at - stall.ms * US;
            if let (Some(w), Some(end)) = (watched.as_mut(), last_end) {
                *w += (began - end).max(0);
            }
            last_end = Some(stall.at);
            if stall.ms * US <= THRESHOLD.as_micros() as i64 {
                continue;
            }
            let rule = match watched {
                None => Some(true),
                Some(w) if w >= window + slack => Some(true),
                Some(w) if w < window - slack => Some(false),
                Some(_) => None, // too close to call
            };
            if rule.is_some_and(|r| r != stall.excused) {
                wrong.push(format!(
                    "a stall of {}ms ending at {:.3}s was {} after {}ms of watched time since the \
                     last excused one (the rule: one per {}ms)",
                    stall.ms,
                    stall.at as f64 / 1e6,
                    if stall.excused {
                        "excused"
                    } else {
                        "not excused"
                    },
                    watched.unwrap_or(0) / US,
                    WINDOW.as_millis()
                ));
            }
            stall.should_excuse = rule.unwrap_or(stall.excused);
            if stall.should_excuse {
                watched = Some(0);
            }
        }
        wrong
    }

    /// The latest moment the rule allows for evicting a peer silent since
    /// `last`: its deadline moved by the stalls the rule excuses while it
    /// waited, then to the end of any stop or stall it fell in, plus a tick
    /// and the margin.
    fn latest_eviction(&self, last: i64, spans: &[(i64, i64)]) -> i64 {
        let limit = LIMIT.as_micros() as i64;
        let interval = INTERVAL.as_micros() as i64;
        let tick = TICK.as_micros() as i64;
        // The server stamps a frame when it reads it: one sent while the
        // server did not run is stamped when it runs again — and so may be
        // one sent just before a stop, not yet delivered (the last piece of
        // a split frame waits behind Nagle for the ACK of the one before,
        // which the receiver delays up to 200 ms) or not yet read.
        let mut seen = last;
        for &(a, b) in spans {
            if a - DELIVERY <= seen && seen < b {
                seen = b;
            }
        }
        for stall in &self.stalls {
            let began = stall.at - stall.ms * US;
            if stall.at <= last || !stall.should_excuse {
                continue;
            }
            if seen + limit + tick + (MARGIN.as_micros() as i64) < began {
                break; // evicted before this stall began
            }
            // Rule::excuse: moved by the stall; after one of an interval
            // or more, at least an interval left; never past the wakeup.
            let pause = stall.ms * US;
            let floor = if pause >= interval {
                stall.at - limit + interval
            } else {
                0
            };
            seen = (seen + pause + US).max(floor).min(stall.at).max(seen);
        }
        // A deadline the reactor had not acted on yet when a stop came (it
        // wakes for it a little after, a tick at most on an idle machine)
        // waits for the stop's end like one that falls inside it.
        let mut due = seen + limit + tick;
        for &(a, b) in spans {
            if a - WAKE <= due && due < b {
                due = b + tick;
            }
        }
        due + MARGIN.as_micros() as i64
    }

    /// Lines within `[from, to]`, for a report.
    fn near(&self, from: i64, to: i64, peer: SocketAddr) -> String {
        let peer = peer.to_string();
        let mut out = String::new();
        let mut evictions = 0;
        let mut accepts = 0;
        for (at, line) in &self.lines {
            if *at < from || *at > to {
                continue;
            }
            if line.contains("] evicted peer=") && !line.contains(&peer) {
                evictions += 1;
                continue;
            }
            if line.contains("accepted peer=") && !line.contains(&peer) {
                accepts += 1;
                continue;
            }
            if line.contains("eviction evidence") && !line.contains(&peer) {
                continue;
            }
            out += &format!("      {:>8.3}s {}\n", *at as f64 / 1e6, line);
        }
        format!(
            "{out}      (and {evictions} other evictions, {accepts} other accepts in that span)\n"
        )
    }
}

/// Everything the oracle found.
#[derive(Debug, Default)]
pub struct Findings {
    pub failures: Vec<String>,
    /// Live peers evicted, one line each with the kernel's evidence: what
    /// the hunt for their cause collects.
    pub live_evictions: Vec<String>,
    pub evictions: usize,
    pub quiet_evictions: usize,
    /// Latest eviction of a silent peer relative to its earliest allowed
    /// moment (ms), and the largest slack left under the upper bound.
    pub worst_late_ms: i64,
}

/// Intervals `[a, b]` merged.
fn merge(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn overlap(spans: &[(i64, i64)], from: i64, to: i64) -> i64 {
    spans
        .iter()
        .map(|&(a, b)| (b.min(to) - a.max(from)).max(0))
        .sum()
}

const US: i64 = 1_000;

/// Judges one run. `records` are every connection the peers made, `stops`
/// the test's own SIGSTOP spans, `end` when the peers stopped.
pub fn judge(
    log: &ServerLog,
    records: &[Record],
    stops: &[(i64, i64)],
    map: &WallMap,
    end: i64,
) -> Findings {
    let mut f = Findings::default();
    let limit = LIMIT.as_micros() as i64;
    let tol = 2_000 + map.drift.abs();
    // Every span the server did not run: the test's stops and the stalls
    // it reported itself (a starved core, a blocked write).
    let mut spans: Vec<(i64, i64)> = stops.to_vec();
    spans.extend(log.stalls.iter().map(|s| (s.at - s.ms * US, s.at)));
    let spans = merge(spans);
    let latest = |from: i64| log.latest_eviction(from, &spans);
    let mut evicted: Vec<bool> = vec![false; records.len()];
    for e in &log.evictions {
        f.evictions += 1;
        if e.idle_ms < LIMIT.as_millis() as i64 {
            f.failures
                .push(format!("evicted with idle below the limit: {}", e.line));
        }
        // The connection of that address open at the eviction: the latest
        // one that began before it.
        let found = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.local == e.peer && r.connect <= e.at + tol)
            .max_by_key(|(_, r)| r.connect);
        let Some((i, r)) = found else {
            f.failures
                .push(format!("evicted a connection no peer made: {}", e.line));
            continue;
        };
        evicted[i] = true;
        let last = r.last_frame_before(e.at);
        match r.kind {
            Kind::Flood => f.failures.push(format!(
                "a flooder was evicted (it sends frames without pause; it should be closed as a slow reader): {}",
                e.line
            )),
            Kind::Burst => f.failures.push(format!(
                "a burst connection, closed by its peer at {:.3}s, was evicted instead of read to its FIN: {}",
                r.self_closed.unwrap_or(0) as f64 / 1e6,
                e.line
            )),
            _ if r.live_at(e.at) => {
                let report = live_report(log, r, e.at, e.peer, stops);
                f.live_evictions.push(format!(
                    "{:?} peer={} conn={} evicted at {:.3}s, {}ms after its last frame; {}; peer saw: {}",
                    r.kind,
                    e.peer,
                    e.conn,
                    e.at as f64 / 1e6,
                    (e.at - last) / US,
                    e.evidence
                        .as_deref()
                        .and_then(|l| l.split_once(" unread=").map(|(_, rest)| format!("unread={rest}")))
                        .unwrap_or_else(|| "no evidence line".into()),
                    r.how_closed.as_deref().unwrap_or("not seen")
                ));
                f.failures.push(format!(
                    "live peer evicted: {}\n    {}\n{report}",
                    e.line,
                    e.evidence.as_deref().unwrap_or("(no evidence line)")
                ));
            }
            _ => {
                f.quiet_evictions += 1;
                if e.at + tol < last + limit {
                    f.failures.push(format!(
                        "{:?} peer evicted {}ms after its last frame, before the limit of {}ms: {}",
                        r.kind,
                        (e.at - last) / US,
                        LIMIT.as_millis(),
                        e.line
                    ));
                }
                let bound = latest(last);
                f.worst_late_ms = f.worst_late_ms.max((e.at - (last + limit)) / US);
                if e.at > bound {
                    f.failures.push(format!(
                        "{:?} peer evicted {}ms after its last frame, past the rule's bound of {}ms \
                         ({}ms of stops and stalls overlap the wait): {}",
                        r.kind,
                        (e.at - last) / US,
                        (bound - last) / US,
                        overlap(&spans, last, e.at) / US,
                        e.line
                    ));
                }
            }
        }
    }
    for (i, r) in records.iter().enumerate() {
        if evicted[i] {
            continue;
        }
        match (r.kind, r.server_closed) {
            (Kind::Flood | Kind::Burst, _) => {}
            (_, Some(closed)) => {
                // Closed by the server without an eviction line.
                f.failures.push(format!(
                    "{:?} peer={} closed by the server at {:.3}s ({}) without an eviction{}",
                    r.kind,
                    r.local,
                    closed as f64 / 1e6,
                    r.how_closed.as_deref().unwrap_or("?"),
                    if r.live_at(closed) {
                        format!(
                            " while live\n{}",
                            live_report(log, r, closed, r.local, stops)
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            (Kind::Dying { .. } | Kind::Trickle, None) => {
                let last = r.last_frame_before(end);
                let gone = r.self_closed.unwrap_or(end);
                let quiet = match r.kind {
                    Kind::Trickle => true,
                    _ => r.died.is_some(),
                };
                if quiet && gone > latest(last) {
                    f.failures.push(format!(
                        "{:?} peer={} silent since {:.3}s never evicted (open until {:.3}s)",
                        r.kind,
                        r.local,
                        last as f64 / 1e6,
                        gone as f64 / 1e6
                    ));
                }
            }
            _ => {}
        }
    }
    f
}

/// A live peer's close, for a human: its sends around it, the stops, and
/// the server's lines near it.
fn live_report(
    log: &ServerLog,
    r: &Record,
    at: i64,
    peer: SocketAddr,
    stops: &[(i64, i64)],
) -> String {
    let sends: Vec<String> = r
        .frames
        .iter()
        .filter(|&&t| t >= at - 3_000 * US && t <= at + 500 * US)
        .map(|&t| format!("{:+}", (t - at) / US))
        .collect();
    let stops: Vec<String> = stops
        .iter()
        .filter(|&&(a, b)| b >= at - 5_000 * US && a <= at)
        .map(|&(a, b)| {
            format!(
                "{:.3}s..{:.3}s ({}ms)",
                a as f64 / 1e6,
                b as f64 / 1e6,
                (b - a) / US
            )
        })
        .collect();
    format!(
        "    complete frames handed to send(), ms relative to the close: [{}]\n    \
         connected at {:.3}s; test's stops before it: {}\n    server lines from 2 s before:\n{}",
        sends.join(" "),
        r.connect as f64 / 1e6,
        stops.join(", "),
        log.near(at - 2_000 * US, at + 200 * US, peer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_the_microsecond() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let a = wall_micros("2026-12-05T00:14:51.997944922Z [INFO] x").unwrap();
        let b = wall_micros("2026-12-05T00:14:52.45Z [INFO] x").unwrap();
        assert_eq!(b - a, 452_056);
    }

    #[test]
    fn overlaps_of_merged_spans() {
        let spans = merge(vec![(10, 20), (15, 30), (40, 50)]);
        assert_eq!(spans, vec![(10, 30), (40, 50)]);
        assert_eq!(overlap(&spans, 0, 100), 30);
        assert_eq!(overlap(&spans, 25, 45), 10);
    }
}
