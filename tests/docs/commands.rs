//! The commands a block shows: what they run, and whether the targets and
//! flags they name exist.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::{LUBDUB, ROOT};

/// A block line as a command: prompt, trailing `&` and comment gone.
pub fn command_of(line: &str) -> &str {
    let line = line.trim();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let line = line.split(" #").next().unwrap_or(line).trim_end();
    line.strip_suffix('&').unwrap_or(line).trim_end()
}

/// The arguments after `lubdub` (or `cargo run --release --`), if the
/// command runs lubdub.
pub fn lubdub_args(command: &str) -> Option<Vec<String>> {
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
pub fn check_command(command: &str, helps: &mut BTreeMap<String, String>) -> Result<(), String> {
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
fn a_command_with_a_flag_lubdub_lacks_is_caught() {
    let mut helps = BTreeMap::new();
    assert!(check_command("lubdub server --interval 1s --misses 3", &mut helps).is_ok());
    assert!(check_command("lubdub server --no-such-flag 1", &mut helps).is_err());
    assert!(check_command("lubdub swarm merge a.json --json -", &mut helps).is_ok());
    assert!(check_command("cargo test --test no_such_test", &mut helps).is_err());
    assert!(check_command("cargo test --test faults no_such_fn", &mut helps).is_err());
    assert!(check_command("cargo run --release -- server --misses 3", &mut helps).is_ok());
}

/// The command of a `sh` block line with port 8898 made `port`.
pub fn with_port(command: &str, port: u16) -> String {
    command
        .replace(":8898", &format!(":{port}"))
        .replace(" 8898", &format!(" {port}"))
}

/// The flag and the value an error line names: `--flag` the first, the
/// value as `(got VALUE)` or clap's `invalid value 'VALUE'`.
pub fn flag_and_value(line: &str) -> Option<(&str, &str)> {
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
