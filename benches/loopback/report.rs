//! Rendering results: one table per scenario on stdout, and the same figures
//! as JSON for tools.

use std::fmt::Write as _;

use crate::json;
use crate::outcome::Outcome;
use crate::servers::Kind;

const LABEL: usize = 32;
const VALUE: usize = 12;
const RATIO: usize = 9;

/// One scenario as a table with lubdub ÷ baseline ratios, then its targets.
pub fn table(out: &Outcome) -> String {
    let mut s = String::new();
    let bases: Vec<Kind> = out
        .columns
        .iter()
        .map(|c| c.kind)
        .filter(|&k| k != Kind::Lubdub)
        .collect();
    let _ = writeln!(s, "\n== {}", out.title);
    let _ = write!(s, "{:<LABEL$}", "");
    for c in &out.columns {
        let _ = write!(s, "{:>VALUE$}", c.name());
    }
    let _ = write!(s, "  │");
    for b in &bases {
        let _ = write!(s, "{:>RATIO$}", format!("÷{}", b.name()));
    }
    s.push('\n');
    for metric in out.metrics {
        let _ = write!(s, "{:<LABEL$}", metric.label);
        for c in &out.columns {
            let cell = match c.get(metric.key) {
                Some(v) => number(v, metric.decimals),
                None => "—".to_string(),
            };
            let _ = write!(s, "{cell:>VALUE$}");
        }
        let _ = write!(s, "  │");
        if metric.ratio {
            for &b in &bases {
                let cell = out
                    .ratio(metric.key, b)
                    .map_or("—".to_string(), |r| format!("{r:.3}"));
                let _ = write!(s, "{cell:>RATIO$}");
            }
        }
        s.push('\n');
    }
    for c in &out.columns {
        if let Some(e) = &c.error {
            let _ = writeln!(s, "  {}: not measured: {e}", c.name());
        }
        for n in &c.notes {
            let _ = writeln!(s, "  {}: {n}", c.name());
        }
    }
    let _ = writeln!(s, "  targets:");
    for v in &out.verdicts {
        let mark = match v.met {
            Some(true) => "met   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(s, "    {mark}  {} — {}", v.target, v.detail);
    }
    s
}

/// `1234567.8` → `1,234,568` for whole-number rows; fixed decimals otherwise.
fn number(v: f64, decimals: usize) -> String {
    if decimals > 0 {
        return format!("{v:.decimals$}");
    }
    let whole = format!("{:.0}", v.abs());
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    if v < 0.0 && whole != "0" {
        grouped.insert(0, '-');
    }
    grouped
}

/// Everything, as one JSON document.
pub fn to_json(machine: &[(&str, String)], quick: bool, outcomes: &[Outcome]) -> String {
    let mut s = String::from("{\n  \"machine\": {");
    for (i, (k, v)) in machine.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}\n    {}: {}", json::string(k), json::string(v));
    }
    let _ = write!(s, "\n  }},\n  \"quick\": {quick},\n  \"scenarios\": [");
    for (i, out) in outcomes.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}\n    {{\n      \"name\": {},\n      \"title\": {},\n      \"servers\": {{",
            json::string(out.name),
            json::string(&out.title)
        );
        for (j, c) in out.columns.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            let values = c
                .values
                .iter()
                .map(|(k, v)| format!("{}: {}", json::string(k), json::float(*v)))
                .collect::<Vec<_>>()
                .join(", ");
            let notes = c
                .notes
                .iter()
                .map(|n| json::string(n))
                .collect::<Vec<_>>()
                .join(", ");
            let error = c.error.as_deref().map_or("null".to_string(), json::string);
            let _ = write!(
                s,
                "{sep}\n        {}: {{\"error\": {error}, \"notes\": [{notes}], \"values\": {{{values}}}}}",
                json::string(c.name())
            );
        }
        s.push_str("\n      },\n      \"ratios_lubdub_over\": {");
        let mut first = true;
        for metric in out.metrics.iter().filter(|m| m.ratio) {
            let ratios = out
                .columns
                .iter()
                .filter(|c| c.kind != Kind::Lubdub)
                .filter_map(|c| {
                    let r = out.ratio(metric.key, c.kind)?;
                    Some(format!(
                        "{}: {}",
                        json::string(c.kind.name()),
                        json::float(r)
                    ))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sep = if first { "" } else { "," };
            first = false;
            let _ = write!(
                s,
                "{sep}\n        {}: {{{ratios}}}",
                json::string(metric.key)
            );
        }
        s.push_str("\n      },\n      \"targets\": [");
        for (j, v) in out.verdicts.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            let met = v.met.map_or("null".to_string(), |m| m.to_string());
            let _ = write!(
                s,
                "{sep}\n        {{\"target\": {}, \"met\": {met}, \"detail\": {}}}",
                json::string(&v.target),
                json::string(&v.detail)
            );
        }
        s.push_str("\n      ]\n    }");
    }
    s.push_str("\n  ]\n}\n");
    s
}
