//! A hint for a flag lubdub does not have but a user reaches for: the
//! words other tools use (`--port`, `--host`, `--concurrency`,
//! `--verbose`) mapped to lubdub's own flag, per subcommand. clap already
//! suggests a flag spelled alike (`--lsiten` → `--listen`); this covers the
//! synonyms no spelling distance finds.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Words per subcommand, and what to say for them.
const SERVER: &[(&[&str], &str)] = &[
    (
        &["port", "bind", "addr", "address", "host", "listen-addr"],
        "the address and port are one flag: --listen HOST:PORT (e.g. --listen 0.0.0.0:8898)",
    ),
    (
        &["timeout", "idle-timeout", "dead-after"],
        "a silent peer is evicted after --interval × --misses (5s × 6 by default)",
    ),
    (
        &["conns", "connections", "max-conns", "max-clients"],
        "did you mean --max-connections N?",
    ),
    (
        &["threads", "processes", "procs", "cores"],
        "did you mean --workers N|auto (processes, each one event loop)?",
    ),
];

const CLIENT: &[(&[&str], &str)] = &[
    (
        &["host", "server", "addr", "address", "target", "port", "url"],
        "the server's address and port are one flag: --connect HOST:PORT",
    ),
    (
        &["timeout"],
        "--connect-timeout bounds a connect; a silent server is left after --interval × --misses",
    ),
];

const SWARM: &[(&[&str], &str)] = &[
    (
        &["host", "server", "addr", "address", "target", "port", "url"],
        "the server's address and port are one flag: --connect HOST:PORT",
    ),
    (
        &["conns", "connections", "concurrency", "conn", "num-clients"],
        "did you mean --clients N (-c N)?",
    ),
    (
        &["time", "seconds", "length", "for", "runtime"],
        "did you mean --duration DUR (-d DUR)?",
    ),
    (
        &["rate", "connect-per-sec", "cps"],
        "did you mean --connect-rate N (-r N), connects per second?",
    ),
    (
        &["threads", "processes", "procs", "cores"],
        "did you mean --workers N|auto (processes, each one event loop)?",
    ),
    (
        &["timeout"],
        "--connect-timeout bounds a connect; a silent server is left after --interval × --misses",
    ),
    (
        &["output", "out", "report", "json-file"],
        "did you mean --json FILE (or --json - for stdout)?",
    ),
];

/// For every subcommand.
const ANY: &[(&[&str], &str)] = &[(
    &[
        "verbose", "debug", "quiet", "silent", "log", "loglevel", "v", "q",
    ],
    "did you mean --log-level LEVEL (off, error, warn, info, debug, trace)?",
)];

/// A hint for `e` when it is an unknown flag with a synonym among
/// lubdub's (on top of clap's own suggestion, if it has one); `args` the
/// command line after the program's name.
pub fn for_error(e: &clap::Error, args: impl Iterator<Item = String>) -> Option<&'static str> {
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let subcommand = args
        .map(|a| a.to_string())
        .find(|a| matches!(a.as_str(), "server" | "client" | "swarm"))?;
    hint(&subcommand, arg)
}

/// The hint for flag `arg` (as typed: `--port`, `--port=1`, `-v`) of
/// `subcommand`.
fn hint(subcommand: &str, arg: &str) -> Option<&'static str> {
    let word = arg.trim_start_matches('-');
    let word = word.split_once('=').map_or(word, |(name, _)| name);
    let table = match subcommand {
        "server" => SERVER,
        "client" => CLIENT,
        "swarm" => SWARM,
        _ => return None,
    };
    table
        .iter()
        .chain(ANY)
        .find(|(words, _)| words.contains(&word))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn synonyms_lead_to_the_flag() {
        assert!(hint("server", "--port").unwrap().contains("--listen"));
        assert!(hint("server", "--bind=0.0.0.0")
            .unwrap()
            .contains("--listen"));
        assert!(hint("client", "--host").unwrap().contains("--connect"));
        assert!(hint("swarm", "--concurrency")
            .unwrap()
            .contains("--clients"));
        assert!(hint("swarm", "--verbose").unwrap().contains("--log-level"));
        assert!(hint("server", "-v").unwrap().contains("--log-level"));
        assert_eq!(hint("server", "--frobnicate"), None);
        assert_eq!(hint("manpage", "--port"), None);
    }
}
