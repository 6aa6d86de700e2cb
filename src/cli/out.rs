//! Everything the command writes to stdout goes through [`print`].
//!
//! A reader that went away (`lubdub swarm | head -1`, `lubdub manpage |
//! true`) closes the pipe: Rust ignores SIGPIPE, so the write fails with
//! EPIPE, and `println!` would turn that into a panic and exit 101. Here
//! it is what it is for `grep` or ripgrep: the reader has all it wanted.
//! Nothing more is written to stdout, and the program ends with the exit
//! code it would have had anyway (0 for a run that passed, the verdict's
//! code for one that failed) — never 141, which would fail a `pipefail`
//! script for a reader that merely stopped early. Any other write error
//! (a full disk behind `> file`) is a real failure, for the caller to report.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// The reader of stdout is gone: nothing more is written there.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout and flushes it. `Ok` also when the reader has
/// closed the pipe, now or before: the text is dropped, quietly.
pub fn print(text: &str) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            log::debug!("stdout closed by its reader; the rest is not written");
            Ok(())
        }
        other => other,
    }
}

/// Writes `text` to stderr, ignoring errors: with stderr gone too
/// (`lubdub swarm 2>&1 | head -1`) there is nobody left to tell, and
/// `eprint!` would panic.
pub fn eprint(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
