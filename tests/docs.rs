//! The docs can be followed to the letter. Every fenced `sh` or `text`
//! block in README.md and docs/*.md is either run here and compared with
//! what the binary does now, or marked with where it came from; every
//! relative link resolves, to a heading where it names one; the README
//! stays a front door (under 200 lines); and the benches' own headers and
//! the docs agree on how long each bench runs.
//!
//! A block is marked by an HTML comment on the line before its fence
//! (blank lines may come between):
//!
//! - `<!-- check: ID -->`: a test below runs what the block shows — the
//!   test for `ID` knows how its blocks fit together — and compares the
//!   output with it.
//! - `<!-- commands -->`: commands to type, with no output shown. Every
//!   `cargo … --test/--bench/--example NAME` names a target that exists
//!   (and a test filter a test that exists), and every `lubdub` command's
//!   flags are in its `--help`.
//! - `<!-- transcript: SOURCE -->`: a recorded run that a test cannot
//!   repeat (a benchmark, thousands of connections for minutes, root and
//!   namespaces), with where it came from. Its `$ lubdub` lines' flags are
//!   checked as above.
//! - `<!-- text: WHAT -->`: not a transcript (a formula, a configuration).
//!
//! Output is compared line by line, the block's lines in order among the
//! output's (the output may have more: a transcript says what it left
//! out). In a block's line every run of digits stands for any run of
//! digits (times, ports, counts), every run of spaces for any run of
//! spaces (columns widen with their numbers), and `…` for anything; the
//! rest must be exact. A log line quoted with its time shortened, or
//! without it, matches on its level and message; a line repeated with only
//! its digits changed (a retry) stands for one or more. A command's port
//! 8898 becomes a free port.
//!
//! The shell tour needs `nc` and `xxd`; without them its test skips with
//! one line naming the tool, and fails instead under
//! `LUBDUB_REQUIRE_TOOLS=1`, as `.ci/run` sets it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::have_tool;
use common::peers::Child;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LUBDUB: &str = env!("CARGO_BIN_EXE_lubdub");

/// One fenced block of a markdown file.
#[derive(Debug, Clone)]
struct Block {
    file: String,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    marker: Option<Marker>,
    body: Vec<String>,
}

impl Block {
    fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Marker {
    Check(String),
    Commands,
    Transcript(String),
    Text(String),
}

fn parse_marker(line: &str) -> Option<Marker> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    if inner == "commands" {
        return Some(Marker::Commands);
    }
    let (kind, what) = inner.split_once(':')?;
    let what = what.trim().to_string();
    match kind.trim() {
        "check" => Some(Marker::Check(what)),
        "transcript" => Some(Marker::Transcript(what)),
        "text" => Some(Marker::Text(what)),
        _ => None,
    }
}

/// README.md and docs/*.md, relative to the crate root.
fn markdown_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn blocks_of(file: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| parse_marker(l));
        let start = i;
        i += 1;
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push(lines[i].to_string());
            i += 1;
        }
        blocks.push(Block {
            file: file.to_string(),
            line: start + 1,
            lang: lang.trim().to_string(),
            marker,
            body,
        });
        i += 1;
    }
    blocks
}

fn all_blocks() -> Vec<Block> {
    markdown_files()
        .iter()
        .flat_map(|f| blocks_of(f, &read(f)))
        .collect()
}

/// The blocks marked `check: id`, in file order (README first).
fn checked(id: &str) -> Vec<Block> {
    all_blocks()
        .into_iter()
        .filter(|b| b.marker == Some(Marker::Check(id.to_string())))
        .collect()
}

/// Code in a language of its own is not a transcript.
fn is_code(lang: &str) -> bool {
    lang.starts_with("rust") || matches!(lang, "yaml" | "toml" | "json")
}

/// Every `check:` id a test below handles.
const CHECKS: [&str; 6] = [
    "tour",
    "swarm-run",
    "flag-errors",
    "eviction-lines",
    "client-session",
    "marked-run",
];

#[test]
fn every_transcript_is_checked_or_marked_with_its_source() {
    let mut unmarked = Vec::new();
    let mut unknown = Vec::new();
    let mut used = BTreeMap::new();
    for block in all_blocks() {
        match &block.marker {
            None if !is_code(&block.lang) => unmarked.push(block.place()),
            Some(Marker::Check(id)) if !CHECKS.contains(&id.as_str()) => {
                unknown.push(format!("{} check: {id}", block.place()))
            }
            Some(Marker::Check(id)) => *used.entry(id.clone()).or_insert(0) += 1,
            Some(Marker::Transcript(s) | Marker::Text(s)) if s.is_empty() => {
                unmarked.push(format!("{} (a marker without its source)", block.place()))
            }
            _ => {}
        }
    }
    assert!(
        unmarked.is_empty(),
        "blocks neither checked by tests/docs.rs nor marked with their source \
         (<!-- check: ID -->, <!-- commands -->, <!-- transcript: SOURCE -->, <!-- text: WHAT -->):\n{}",
        unmarked.join("\n")
    );
    assert!(
        unknown.is_empty(),
        "no test handles: {}",
        unknown.join("\n")
    );
    for id in CHECKS {
        assert!(used.contains_key(id), "no block is marked check: {id}");
    }
}

// ---- matching output ---------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Char(char),
    Digits,
    Space,
    Any,
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    for c in pattern.chars() {
        let t = match c {
            '0'..='9' => Tok::Digits,
            ' ' | '\t' => Tok::Space,
            '…' => Tok::Any,
            c => Tok::Char(c),
        };
        if matches!(t, Tok::Digits | Tok::Space) && out.last() == Some(&t) {
            continue;
        }
        out.push(t);
    }
    out
}

fn matches_at(pattern: &[Tok], text: &[char]) -> bool {
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
fn line_matches(expected: &str, actual: &str) -> bool {
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
fn log_prefix(line: &str) -> Option<(&str, &str)> {
    let (prefix, message) = line.split_once("] ")?;
    let level = prefix.rsplit_once('[')?.1;
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .contains(&level)
        .then_some((level, message))
}

/// `expected`'s non-blank lines, in order, among `actual`'s; or what is
/// missing, with the output.
fn in_order(expected: &[String], actual: &[String]) -> Result<(), String> {
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
    assert!(!line_matches("interval=100ms", "interval=100s"));
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

// ---- commands ----------------------------------------------------------

/// A block line as a command: prompt, trailing `&` and comment gone.
fn command_of(line: &str) -> &str {
    let line = line.trim();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let line = line.split(" #").next().unwrap_or(line).trim_end();
    line.strip_suffix('&').unwrap_or(line).trim_end()
}

/// The arguments after `lubdub` (or `cargo run --release --`), if the
/// command runs lubdub.
fn lubdub_args(command: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = if let Some(k) = words.iter().position(|w| *w == "lubdub") {
        k + 1
    } else {
        let k = words.windows(2).position(|w| w == ["cargo", "run"])?;
        let dashes = words[k..].iter().position(|w| *w == "--")?;
        if words[k..k + dashes].contains(&"--example") {
            return None;
        }
        k + dashes + 1
    };
    Some(words[at..].iter().map(|w| w.to_string()).collect())
}

/// Checks one command line; `Err` says what is wrong.
fn check_command(command: &str, helps: &mut BTreeMap<String, String>) -> Result<(), String> {
    let words: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .collect();
    for (flag, dir) in [
        ("--test", "tests"),
        ("--bench", "benches"),
        ("--example", "examples"),
    ] {
        for (k, w) in words.iter().enumerate() {
            if *w != flag {
                continue;
            }
            let name = words.get(k + 1).ok_or(format!("{flag} without a name"))?;
            let file = format!("{dir}/{name}.rs");
            let source = std::fs::read_to_string(Path::new(ROOT).join(&file))
                .map_err(|_| format!("`{flag} {name}`: no {file}"))?;
            // A test filter names a test of that file.
            if let Some(filter) = words.get(k + 2).filter(|f| !f.starts_with('-')) {
                if flag == "--test" && !source.contains(&format!("fn {filter}")) {
                    return Err(format!("{file} has no test `{filter}`"));
                }
            }
        }
    }
    let Some(args) = lubdub_args(command) else {
        return Ok(());
    };
    let mut sub: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    if sub.len() == 2 && !(sub[0] == "swarm" && sub[1] == "merge") {
        sub.truncate(1);
    }
    let sub = sub.join(" ");
    let help = helps.entry(sub.clone()).or_insert_with(|| {
        let out = Command::new(LUBDUB)
            .args(sub.split_whitespace())
            .arg("--help")
            .output()
            .expect("run lubdub --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    if help.is_empty() {
        return Err(format!("`lubdub {sub} --help` printed nothing"));
    }
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap_or(flag);
        let known = help.match_indices(flag).any(|(i, _)| {
            let after = help[i + flag.len()..].chars().next();
            !after.is_some_and(|c| c.is_alphanumeric() || c == '-')
        });
        if !known {
            return Err(format!("`lubdub {sub}` has no flag {flag}"));
        }
    }
    Ok(())
}

#[test]
fn every_command_shown_names_targets_and_flags_that_exist() {
    let mut helps = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for block in all_blocks() {
        let lines: Vec<&String> = match block.marker {
            Some(Marker::Commands) => block
                .body
                .iter()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect(),
            // A transcript's commands are its prompt lines.
            Some(Marker::Transcript(_) | Marker::Check(_)) => {
                block.body.iter().filter(|l| l.starts_with("$ ")).collect()
            }
            _ => continue,
        };
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            checked += 1;
            if let Err(e) = check_command(command_of(line), &mut helps) {
                wrong.push(format!("{}: {line}\n  {e}", block.place()));
            }
        }
    }
    assert!(checked >= 10, "only {checked} commands found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_command_with_a_flag_lubdub_lacks_is_caught() {
    let mut helps = BTreeMap::new();
    assert!(check_command("lubdub server --interval 1s --misses 3", &mut helps).is_ok());
    assert!(check_command("lubdub server --no-such-flag 1", &mut helps).is_err());
    assert!(check_command("lubdub swarm merge a.json --json -", &mut helps).is_ok());
    assert!(check_command("cargo test --test no_such_test", &mut helps).is_err());
    assert!(check_command("cargo test --test faults no_such_fn", &mut helps).is_err());
    assert!(check_command("cargo run --release -- server --misses 3", &mut helps).is_ok());
}

// ---- links, length, bench run times ------------------------------------

/// GitHub's anchor for a heading: lower case, spaces to dashes, and
/// everything but letters, digits, `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors_of(text: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every `](target)` of a markdown text outside code.
fn links_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves_to_a_file_and_heading() {
    let mut broken = Vec::new();
    let mut count = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = Path::new(&file)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for link in links_of(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            count += 1;
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target: PathBuf = if path.is_empty() {
                PathBuf::from(&file)
            } else {
                dir.join(path)
            };
            let full = Path::new(ROOT).join(&target);
            if !full.exists() {
                broken.push(format!("{file}: ({link}): no {}", target.display()));
                continue;
            }
            if !fragment.is_empty() {
                let target_text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors_of(&target_text).iter().any(|a| a == fragment) {
                    broken.push(format!("{file}: ({link}): no heading #{fragment}"));
                }
            }
        }
    }
    assert!(count >= 20, "only {count} relative links found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_under_200_lines_and_opens_with_the_two_commands() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines < 200, "README.md has {lines} lines");
    let first = &blocks_of("README.md", &readme)[0];
    assert!(first.line < 6, "the first block is at line {}", first.line);
    let commands: Vec<&str> = first.body.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["cargo run --release -- server", "cargo test"]);
}

/// "about N minutes" (or "N minutes") in `text`, the first.
fn minutes(text: &str) -> Option<u32> {
    let at = text.find(" minutes")?;
    let number = text[..at].rsplit(' ').next()?;
    number.parse().ok()
}

/// A markdown text's paragraphs, list items and table rows, each on one
/// line.
fn units(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let starts_unit = line.starts_with('|') || line.starts_with("- ") || line.starts_with('#');
        if line.trim().is_empty() {
            open = false;
        } else if open && !starts_unit {
            let last = out.last_mut().expect("an open unit");
            last.push(' ');
            last.push_str(line.trim());
        } else {
            out.push(line.trim().to_string());
            open = !line.starts_with('|');
        }
    }
    out
}

#[test]
fn bench_headers_and_docs_agree_on_how_long_each_bench_runs() {
    for bench in ["loopback", "scale", "soak"] {
        let source = read(&format!("benches/{bench}.rs"));
        let header = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .find(|l| {
                l.contains(&format!("cargo bench --bench {bench} ")) && l.contains(" minutes")
            })
            .unwrap_or_else(|| panic!("benches/{bench}.rs: no full-run line giving its minutes"));
        let said = minutes(header).unwrap_or_else(|| panic!("{header}"));
        let mut mentions = 0;
        for file in markdown_files() {
            // A paragraph, list item or table row that names the bench and
            // a time.
            for piece in units(&read(&file)) {
                if !piece.contains(&format!("cargo bench --bench {bench}`")) {
                    continue;
                }
                if let Some(m) = minutes(&piece) {
                    mentions += 1;
                    assert_eq!(
                        m, said,
                        "{file} says {m} minutes for the {bench} bench, its header {said}: {piece}"
                    );
                }
            }
        }
        assert!(mentions > 0, "no doc says how long the {bench} bench runs");
    }
}

// ---- the runs ----------------------------------------------------------

/// The command of a `sh` block line with port 8898 made `port`.
fn with_port(command: &str, port: u16) -> String {
    command
        .replace(":8898", &format!(":{port}"))
        .replace(" 8898", &format!(" {port}"))
}

/// Every line a finished child wrote on stderr.
fn stderr_lines(child: &mut Child) -> Vec<String> {
    while child
        .wait_for_line("", Duration::from_millis(300))
        .is_some()
    {}
    child.drain();
    child.log().lines().map(str::to_string).collect()
}

/// A server as the README's tour starts it (its flags, on a free port).
fn tour_server(tour: &[Block]) -> (Child, u16) {
    let args = lubdub_args(command_of(&tour[0].body[0])).expect("the tour starts lubdub");
    assert_eq!(args[0], "server", "{}", tour[0].place());
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let (child, addr) = Child::server(&args);
    (child, addr.port())
}

/// README: start a server, send one heartbeat with printf | nc | xxd, read
/// the server's log.
#[test]
fn the_readme_shell_tour_runs_as_written() {
    let tour = checked("tour");
    assert_eq!(tour.len(), 3, "the tour's blocks: server, heartbeat, log");
    let test = "the_readme_shell_tour_runs_as_written";
    if !have_tool(test, "nc", "-h", "netcat-openbsd") || !have_tool(test, "xxd", "-v", "xxd") {
        return;
    }
    let (mut server, port) = tour_server(&tour);

    let heartbeat = &tour[1];
    let command = with_port(command_of(&heartbeat.body[0]), port);
    let expected = heartbeat.body[1]
        .strip_prefix("# ")
        .expect("the heartbeat block shows xxd's line as a comment");
    let began = Instant::now();
    // dash, where the README's `printf` must work too.
    let out = Command::new("sh")
        .args(["-c", &command])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    let took = began.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        expected,
        "{command}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nc waits until the server evicts it: interval × misses after the one
    // heartbeat, never earlier.
    assert!(
        took >= Duration::from_millis(300),
        "{command} ended after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{command} took {took:?}");

    server.wait_for("evicted", Duration::from_secs(5));
    server.signal(libc::SIGINT);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let log = stderr_lines(&mut server);
    if let Err(e) = in_order(&tour[2].body, &log) {
        panic!("{}: the server's log differs: {e}", tour[2].place());
    }
}

/// README (and swarm.md's excerpts of the same run): a thousand clients
/// for ten seconds against the tour's server.
#[test]
fn the_readme_swarm_run_reports_as_shown() {
    let blocks = checked("swarm-run");
    let (mut server, port) = tour_server(&checked("tour"));
    let command = blocks
        .iter()
        .flat_map(|b| &b.body)
        .find(|l| lubdub_args(command_of(l)).is_some_and(|a| a[0] == "swarm"))
        .expect("a swarm command");
    let mut args = lubdub_args(&with_port(command_of(command), port)).unwrap();
    // The run shown met the default timing bounds on a quiet machine; a
    // test shares its machine, so it widens those bounds (and only those):
    // what it checks is the report's shape and that every reply came.
    args.extend(
        [
            "--max-late",
            "1000000",
            "--max-p99",
            "10s",
            "--max-stall",
            "10s",
        ]
        .map(String::from),
    );
    let outputs: Vec<&Block> = blocks.iter().filter(|b| b.lang == "text").collect();
    assert!(outputs.len() >= 2, "the run's output blocks");
    // A loaded machine may fail the run's own bounds once; twice is the
    // docs' fault or the code's.
    let mut failure = String::new();
    for attempt in 0..2 {
        let out = Command::new(LUBDUB)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("lubdub swarm");
        // Status lines and logs on stderr come before the report, wherever
        // the report is printed.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mismatch = outputs.iter().find_map(|b| {
            in_order(&b.body, &lines)
                .err()
                .map(|e| format!("{}: {e}", b.place()))
        });
        match (out.status.code(), mismatch) {
            (Some(0), None) => {
                server.terminate();
                return;
            }
            (code, m) => {
                failure = format!(
                    "attempt {attempt}: exit {code:?}; {}",
                    m.unwrap_or_default()
                );
                eprintln!("{failure}");
            }
        }
    }
    panic!("{failure}");
}

/// The flag and the value an error line names: `--flag` the first, the
/// value as `(got VALUE)` or clap's `invalid value 'VALUE'`.
fn flag_and_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find("--")?;
    let flag = &line[at..];
    let flag = &flag[..flag
        .find(|c: char| !(c.is_alphanumeric() || c == '-'))
        .unwrap_or(flag.len())];
    let value = match line.rsplit_once("(got ") {
        Some((_, v)) => v.strip_suffix(')')?,
        None => line.split_once("invalid value '")?.1.split('\'').next()?,
    };
    Some((flag, value))
}

/// keepalive.md, server.md: each flag error, as the server prints it, with exit code 2.
#[test]
fn the_flag_errors_shown_are_what_the_server_says() {
    let blocks = checked("flag-errors");
    assert!(!blocks.is_empty());
    let mut lines = 0;
    for block in &blocks {
        for line in &block.body {
            let (flag, value) = flag_and_value(line.trim())
                .unwrap_or_else(|| panic!("{}: no flag and value in {line}", block.place()));
            let out = Command::new(LUBDUB)
                .args(["server", "--listen", "127.0.0.1:0", flag, value])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
            assert!(
                stderr.lines().any(|l| l == line.trim()),
                "{}: `lubdub server {flag} {value}` says\n{stderr}instead of\n{line}",
                block.place()
            );
            lines += 1;
        }
    }
    assert!(lines >= 3);
}

/// liveness.md: the eviction line and, at debug, its evidence line, from
/// a peer that sent one heartbeat and three bytes of the next header.
#[test]
fn the_eviction_lines_shown_are_what_the_server_logs() {
    use std::io::Write;
    let blocks = checked("eviction-lines");
    assert!(!blocks.is_empty());
    let (mut server, addr) = Child::server(&[
        "--interval",
        "100ms",
        "--misses",
        "3",
        "--log-level",
        "debug",
    ]);
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.write_all(&common::REQUEST).unwrap();
    peer.write_all(&common::REQUEST[..3]).unwrap();
    server
        .wait_for("evicted", Duration::from_secs(5))
        .expect("no eviction");
    server.terminate();
    let log = stderr_lines(&mut server);
    for block in &blocks {
        if let Err(e) = in_order(&block.body, &log) {
            panic!("{}: {e}", block.place());
        }
    }
}

/// client.md: a client through its server's freeze (SIGSTOP), thaw, death
/// (SIGKILL) and restart, then Ctrl-C. The signals follow the client's own
/// lines rather than the clock of the run shown.
#[test]
fn the_client_session_shown_is_what_the_client_logs() {
    let blocks = checked("client-session");
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    let port = common::peers::restartable_port().port();
    let commands: Vec<Vec<String>> = block
        .body
        .iter()
        .filter(|l| l.starts_with("$ "))
        .map(|l| lubdub_args(&with_port(command_of(l), port)).expect("a lubdub command"))
        .collect();
    let [server_args, client_args] = &commands[..] else {
        panic!("{}: a server and a client command", block.place());
    };
    assert_eq!(
        (&server_args[0][..], &client_args[0][..]),
        ("server", "client")
    );
    let start_server = || {
        let mut command = Command::new(LUBDUB);
        command.args(server_args);
        Child::listening(command).0
    };
    let server = start_server();
    let mut command = Command::new(LUBDUB);
    command
        .args(client_args)
        .args(["--connect", &format!("127.0.0.1:{port}")]);
    let mut client = Child::from_command(command);
    let wait = Duration::from_secs(15);
    client.expect_line("] connected to", wait);
    std::thread::sleep(Duration::from_millis(2500));
    server.signal(libc::SIGSTOP);
    client.expect_line("server silent for", wait);
    // The kernel completes the connect into the frozen server's backlog.
    client.expect_line("] connected to", wait);
    server.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGKILL);
    client.expect_line("server closed the connection", wait);
    client.expect_line("connection refused", wait);
    std::thread::sleep(Duration::from_secs(2));
    let _server = start_server();
    drop(server);
    client.expect_line("] connected to", wait);
    std::thread::sleep(Duration::from_secs(3));
    client.signal(libc::SIGINT);
    assert!(client.wait_exit(wait).success());
    let log = stderr_lines(&mut client);
    let expected: Vec<String> = block
        .body
        .iter()
        .filter(|l| !(l.starts_with("$ ") || l.trim() == "^C" || l.trim_start().starts_with('#')))
        .cloned()
        .collect();
    if let Err(e) = in_order(&expected, &log) {
        panic!("{}: {e}", block.place());
    }
}

/// swarm.md: a swarm marked with SIGUSR1 reports the round trips since the
/// mark on a line of their own, after the whole run's.
#[test]
fn a_marked_swarm_reports_round_trips_since_the_mark_as_shown() {
    let blocks = checked("marked-run");
    assert!(!blocks.is_empty());
    let (mut server, addr) = Child::server(&["--interval", "100ms", "--misses", "3"]);
    let swarm = Command::new(LUBDUB)
        .args(["swarm", "--connect", &addr.to_string(), "--clients", "10"])
        .args(["--interval", "100ms", "--duration", "3s"])
        .args([
            "--max-late",
            "1000000",
            "--max-p99",
            "10s",
            "--max-stall",
            "10s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lubdub swarm");
    // Well after the swarm watches for the mark, well before its end.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(swarm.id() as i32, libc::SIGUSR1) };
    let out = swarm.wait_with_output().expect("lubdub swarm");
    server.terminate();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for block in &blocks {
        if let Err(e) = in_order(&block.body, &lines) {
            panic!("{}: {e}", block.place());
        }
    }
}
