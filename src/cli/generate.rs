//! `lubdub manpage` and `lubdub completions SHELL`: both generated from
//! the same clap definitions that parse the command line, so neither can
//! drift from the flags. Hidden flags (a worker's `--worker`, `--room`,
//! `--listen-fd`) are left out of both: clap's man page skips them itself,
//! its completion scripts do not, so they are given a copy without them.

use clap::CommandFactory;

use super::{out, Cli, EXIT_CODES};

/// The man page, one page for every subcommand, on stdout.
pub fn manpage() -> i32 {
    print(&man_page())
}

/// A completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut full = Cli::command();
    full.build();
    let mut cmd = without_hidden(&full);
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lubdub", &mut script);
    print(&String::from_utf8_lossy(&script))
}

/// `cmd` (built) with its hidden flags left out, and its subcommands'.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(cmd.get_name().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        copy = copy.version(version.to_string());
    }
    copy.subcommands(cmd.get_subcommands().map(without_hidden))
}

fn print(text: &str) -> i32 {
    match out::print(text) {
        Ok(()) => 0,
        Err(e) => super::fail(format!("cannot write to stdout: {e}")),
    }
}

/// The page: lubdub's own sections, then a section per subcommand (its
/// synopsis, description and options, as subsections), then the exit
/// codes as a table that roff does not refill.
fn man_page() -> String {
    let mut cmd = Cli::command().after_help(None::<&str>);
    cmd.build();
    // Not Man::render: its list of subcommands points to a page for each,
    // and this one page holds them all.
    let top = clap_mangen::Man::new(cmd.clone());
    let mut page = render(|w| {
        top.render_title(w)?;
        top.render_name_section(w)?;
        top.render_synopsis_section(w)?;
        top.render_description_section(w)?;
        top.render_options_section(w)?;
        top.render_version_section(w)
    });
    let subcommands = |c: &clap::Command| {
        c.get_subcommands()
            .filter(|s| s.get_name() != "help")
            .cloned()
            .collect::<Vec<_>>()
    };
    for sub in subcommands(&cmd) {
        section(&mut page, &sub, &format!("lubdub {}", sub.get_name()));
        for nested in subcommands(&sub) {
            let name = format!("lubdub {} {}", sub.get_name(), nested.get_name());
            section(&mut page, &nested, &name);
        }
    }
    page.push_str(".SH \"EXIT STATUS\"\n.nf\n");
    for line in EXIT_CODES.lines().skip(1) {
        page.push_str(&escape(line));
        page.push('\n');
    }
    page.push_str(".fi\n");
    page
}

/// Appends `sub`'s synopsis, description and options under a heading of
/// its own, its sections turned into subsections.
fn section(page: &mut String, sub: &clap::Command, name: &str) {
    let man = clap_mangen::Man::new(
        sub.clone()
            .bin_name(name.to_string())
            .after_help(None::<&str>),
    );
    page.push_str(&format!(".SH \"{}\"\n", name.to_uppercase()));
    let body = render(|w| {
        man.render_synopsis_section(w)?;
        man.render_description_section(w)?;
        man.render_options_section(w)
    });
    for line in body.lines() {
        match line.strip_prefix(".SH ") {
            Some(heading) => page.push_str(&format!(".SS {heading}\n")),
            None => {
                page.push_str(line);
                page.push('\n');
            }
        }
    }
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = f(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A line of plain text for roff: backslashes and minus signs escaped, and
/// a leading dot or quote kept from being read as a request.
fn escape(line: &str) -> String {
    let text = line.replace('\\', "\\\\").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}
