//! `lubdub swarm merge A.json B.json …`: one exact report from the reports
//! of swarms run side by side, on several machines.

use std::path::PathBuf;

use clap::Args;
use lubdub::swarm::{Part, PartCounts, Report};

use super::Output;

/// The exit codes of `swarm merge`, for `--help`.
/// Flags of `lubdub swarm merge`. Its exit codes are the swarm's, for the
/// merged run; 2 also for a report that cannot be read, is not a swarm's
/// JSON report, has no histograms, or ran another mode or interval, or was
/// judged by other criteria, than the first.
#[derive(Args, Debug)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub struct MergeArgs {
    /// Reports written by `lubdub swarm --json PATH` (one JSON object each).
    #[arg(required = true, value_name = "FILE")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report as one JSON object to FILE, or to stdout
    /// with `-` (the human report then goes to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Reads every report, merges them and prints the merged report as a
/// swarm prints its own; exit code as a swarm's for the merged verdict, or
/// 2 with one line for a report that cannot be read or does not belong.
pub fn run(args: MergeArgs) -> i32 {
    let mut parts = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return refuse(path, &format!("cannot be read: {e}")),
        };
        match Report::from_json(&text) {
            Ok(report) => parts.push((path, report)),
            Err(e) => return refuse(path, &e),
        }
    }
    let Some((_, first)) = parts.first() else {
        return refuse(&PathBuf::from("-"), "no report given");
    };
    let mut merged = Report::empty(
        first.mode,
        first.interval_us,
        first.flood_depth,
        first.criteria,
    );
    for (index, (path, report)) in parts.iter().enumerate() {
        if let Err(e) = merged.absorb(report) {
            return refuse(path, &e);
        }
        merged.parts.push(Part {
            index,
            source: Some(path.display().to_string()),
            clients: report.target,
            outcome: Ok(PartCounts::of(report)),
        });
    }
    merged.summarize();
    let json_file = match super::json_file(args.json.as_deref()) {
        Ok(file) => file,
        Err(code) => return code,
    };
    Output {
        json_file,
        json_stdout: args.json.is_some(),
    }
    .report(&merged)
}

fn refuse(path: &std::path::Path, why: &str) -> i32 {
    eprintln!("error: swarm merge: {}: {why}", path.display());
    2
}
