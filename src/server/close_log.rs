//! The `info` lines about closes an operator should see — a protocol
//! error, a peer that does not read, a rejection, an exhausted budget, a
//! bad PROXY header, an I/O error, a peer gone mid-frame — held to a rate,
//! with a count of what was held back.
//!
//! One such line per close would let a hostile peer (or a thousand of
//! them) flood the log, and the disk under it; none at all (they were at
//! `debug`) left a newcomer whose shell sent text instead of frames
//! staring at a silent server. So each kind of close may write
//! [`PER_SECOND`] lines in a one-second window, the window opening at its
//! first close; past that they are counted, and when the window ends one
//! line per kind says how many were held back:
//!
//! ```text
//! suppressed kind=protocol_errors count=1234: … and 1234 more protocol errors in the last second
//! ```
//!
//! Nothing is lost: the lines written plus the counts of the `suppressed`
//! lines are every close of those kinds (and the stats counters have them
//! too). The limiter is a pure function of the times it is given; the
//! reactor reads the clock and sets a timer for the window's end.

use crate::protocol::HEADER_LEN;

/// Lines each kind may write in one window.
pub(crate) const PER_SECOND: u32 = 5;

/// A window's length, in the reactor clock's nanoseconds.
pub(crate) const WINDOW: u64 = 1_000_000_000;

/// The kinds of close held to the rate, each its own budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Protocol,
    SlowReader,
    Rejected,
    OverBudget,
    ProxyError,
    ProxyTimeout,
    Io,
    MidFrame,
    TooFast,
    Denied,
    OverSourceLimit,
}

const KINDS: [Kind; 11] = [
    Kind::Protocol,
    Kind::SlowReader,
    Kind::Rejected,
    Kind::OverBudget,
    Kind::ProxyError,
    Kind::ProxyTimeout,
    Kind::Io,
    Kind::MidFrame,
    Kind::TooFast,
    Kind::Denied,
    Kind::OverSourceLimit,
];

impl Kind {
    /// The key in a `suppressed` line: the stats counter that counts it
    /// (a peer gone mid-frame is counted in `closed_by_peer`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Protocol => "protocol_errors",
            Kind::SlowReader => "slow_readers",
            Kind::Rejected => "rejected",
            Kind::OverBudget => "over_budget",
            Kind::ProxyError => "proxy_errors",
            Kind::ProxyTimeout => "proxy_timeouts",
            Kind::Io => "io_errors",
            Kind::MidFrame => "closed_mid_frame",
            Kind::TooFast => "too_fast",
            Kind::Denied => "denied",
            Kind::OverSourceLimit => "over_source_limit",
        }
    }

    /// The same in words, plural.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Kind::Protocol => "protocol errors",
            Kind::SlowReader => "peers that did not read",
            Kind::Rejected => "rejected connections",
            Kind::OverBudget => "closes over the buffer budget",
            Kind::ProxyError => "bad PROXY headers",
            Kind::ProxyTimeout => "PROXY header timeouts",
            Kind::Io => "I/O errors",
            Kind::MidFrame => "peers that closed mid-frame",
            Kind::TooFast => "peers closed for heartbeating too fast",
            Kind::Denied => "connections refused by address",
            Kind::OverSourceLimit => "connections over the per-source limit",
        }
    }
}

/// Whether a close's line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it.
    Log,
    /// Held back and counted. `flush_at`: the first held back in this
    /// window, so the caller should call [`CloseLog::flush`] at that time.
    Suppressed { flush_at: Option<u64> },
}

/// The rate limit over every kind (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct CloseLog {
    /// When the current window opened, if one is open.
    window: Option<u64>,
    logged: [u32; KINDS.len()],
    suppressed: [u64; KINDS.len()],
    /// A flush is due at the window's end.
    flush_due: bool,
}

impl CloseLog {
    /// Judges a close of `kind` at `now`. A window that has ended is
    /// flushed first, its counts handed to `summary`.
    pub(crate) fn admit(
        &mut self,
        kind: Kind,
        now: u64,
        summary: impl FnMut(Kind, u64),
    ) -> Verdict {
        self.flush(now, summary);
        let start = *self.window.get_or_insert(now);
        let i = kind as usize;
        if self.logged[i] < PER_SECOND {
            self.logged[i] += 1;
            return Verdict::Log;
        }
        self.suppressed[i] += 1;
        let flush_at = (!self.flush_due).then(|| {
            self.flush_due = true;
            start + WINDOW
        });
        Verdict::Suppressed { flush_at }
    }

    /// Ends the window if it has ended by `now`: hands each kind's count
    /// of lines held back (if any) to `summary`, and starts afresh.
    pub(crate) fn flush(&mut self, now: u64, mut summary: impl FnMut(Kind, u64)) {
        let Some(start) = self.window else { return };
        if now < start + WINDOW {
            return;
        }
        for kind in KINDS {
            let held = self.suppressed[kind as usize];
            if held > 0 {
                summary(kind, held);
            }
        }
        *self = CloseLog::default();
    }

    /// Hands over what is held back whether or not the window has ended
    /// (the server is stopping: no later flush will come).
    pub(crate) fn finish(&mut self, summary: impl FnMut(Kind, u64)) {
        if let Some(start) = self.window {
            self.flush(start + WINDOW, summary);
        }
    }
}

/// Writes the line that says how many lines of `kind` were held back.
pub(crate) fn summary(kind: Kind, count: u64) {
    log::info!(
        "suppressed kind={} count={count}: … and {count} more {} in the last second",
        kind.key(),
        kind.words()
    );
}

/// What `bytes` — a malformed header, or what a peer sent before it
/// closed mid-header — looked like, for the close line: lubdub's frames are
/// binary, and the commonest mistake is text from a shell or a browser.
pub(crate) fn describe(bytes: &[u8]) -> String {
    debug_assert!(bytes.len() <= HEADER_LEN, "{} bytes", bytes.len());
    let text = |b: &u8| matches!(b, b' '..=b'~' | b'\t' | b'\r' | b'\n');
    if !bytes.is_empty() && bytes.iter().all(text) {
        format!(
            "the peer sent text, not a frame: \"{}\"",
            bytes.escape_ascii()
        )
    } else if bytes.starts_with(&[0x16, 0x03]) {
        "the peer speaks TLS, not lubdub's frames".to_string()
    } else {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("header bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_writes_its_share_and_the_rest_are_counted_once_the_window_ends() {
        let mut log = CloseLog::default();
        let mut summaries = Vec::new();
        let mut written = 0;
        // 1000 protocol errors and 3 I/O errors inside one second.
        for i in 0..1000u64 {
            let now = 10 + i * 900_000;
            match log.admit(Kind::Protocol, now, |k, n| summaries.push((k, n))) {
                Verdict::Log => written += 1,
                Verdict::Suppressed { flush_at } => {
                    // Only the first held back asks for a flush, at the
                    // window's end.
                    assert_eq!(flush_at.is_some(), i == u64::from(PER_SECOND));
                    if let Some(at) = flush_at {
                        assert_eq!(at, 10 + WINDOW);
                    }
                }
            }
        }
        for _ in 0..3 {
            assert_eq!(
                log.admit(Kind::Io, 500_000_000, |_, _| panic!()),
                Verdict::Log
            );
        }
        assert_eq!(written, PER_SECOND);
        // Not yet: the window is still open.
        log.flush(10 + WINDOW - 1, |k, n| summaries.push((k, n)));
        assert!(summaries.is_empty());
        log.flush(10 + WINDOW, |k, n| summaries.push((k, n)));
        assert_eq!(summaries, [(Kind::Protocol, 1000 - u64::from(PER_SECOND))]);
        // A fresh window: lines are written again.
        assert_eq!(
            log.admit(Kind::Protocol, 10 + WINDOW, |_, _| panic!()),
            Verdict::Log
        );
    }

    #[test]
    fn a_close_after_the_window_flushes_it_first() {
        let mut log = CloseLog::default();
        for _ in 0..PER_SECOND + 2 {
            log.admit(Kind::SlowReader, 0, |_, _| panic!());
        }
        let mut summaries = Vec::new();
        let v = log.admit(Kind::SlowReader, 2 * WINDOW, |k, n| summaries.push((k, n)));
        assert_eq!(v, Verdict::Log);
        assert_eq!(summaries, [(Kind::SlowReader, 2)]);
    }

    #[test]
    fn text_tls_and_binary_are_told_apart() {
        assert_eq!(
            describe(b"hello\n"),
            "the peer sent text, not a frame: \"hello\\n\""
        );
        assert_eq!(
            describe(b"GET / HT"),
            "the peer sent text, not a frame: \"GET / HT\""
        );
        assert_eq!(
            describe(b"say \"hi\""),
            "the peer sent text, not a frame: \"say \\\"hi\\\"\""
        );
        assert_eq!(
            describe(&[0x16, 0x03, 0x01, 0x02, 0, 1, 0, 1]),
            "the peer speaks TLS, not lubdub's frames"
        );
        assert_eq!(
            describe(&[0xff, 0, 0, 0, 3, 0, 0, 0]),
            "header bytes ff 00 00 00 03 00 00 00"
        );
    }
}
