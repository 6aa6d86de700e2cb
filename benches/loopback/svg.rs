//! The run's headline figures as bars, one panel a figure and one bar a
//! server, in one SVG: what a reader of the docs looks at before the
//! tables. Read from the JSON report, so a saved report can be drawn again
//! (`-- --plot REPORT.json`) without running anything.

use crate::json;
use crate::servers::{Kind, ALL};

/// One panel: a figure of one scenario, for every server that has it.
struct Panel {
    title: &'static str,
    scenario: &'static str,
    key: &'static str,
    decimals: usize,
}

const PANELS: [Panel; 3] = [
    Panel {
        title: "memory per idle connection (B)",
        scenario: "idle",
        key: "rss_per_conn_b",
        decimals: 0,
    },
    Panel {
        title: "server CPU s per 1M replies",
        scenario: "flood",
        key: "cpu_s_per_m",
        decimals: 2,
    },
    Panel {
        title: "round trip p99, idle (µs)",
        scenario: "idle",
        key: "rtt_p99_us",
        decimals: 0,
    },
];

const W: f64 = 280.0;
const H: f64 = 240.0;
const LEFT: f64 = 50.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 30.0;

/// The figure `key` of `server` in `scenario` of a JSON report written by
/// `report::to_json`.
pub fn figure(report: &str, scenario: &str, server: &str, key: &str) -> Option<f64> {
    let at = report.find(&format!("\"name\": {}", json::string(scenario)))?;
    let rest = &report[at..];
    // This scenario's part ends where the next one begins.
    let end = rest[1..].find("\"name\": ").map_or(rest.len(), |e| e + 1);
    json::number(&rest[..end], &[server, "values", key])
}

/// The picture, or None when the report has none of its figures (a run of
/// one scenario draws the panels it has).
pub fn bars(report: &str) -> Option<String> {
    let panels: Vec<(&Panel, Vec<(Kind, f64)>)> = PANELS
        .iter()
        .map(|p| {
            let values = ALL
                .iter()
                .filter_map(|&k| Some((k, figure(report, p.scenario, k.name(), p.key)?)))
                .collect::<Vec<_>>();
            (p, values)
        })
        .filter(|(_, values)| !values.is_empty())
        .collect();
    if panels.is_empty() {
        return None;
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        W * panels.len() as f64
    );
    for (i, (panel, values)) in panels.iter().enumerate() {
        svg += &draw(W * i as f64, panel, values);
    }
    Some(svg + "</svg>\n")
}

fn draw(dx: f64, panel: &Panel, values: &[(Kind, f64)]) -> String {
    let max = values.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let (pw, ph) = (W - LEFT - 20.0, H - TOP - BOTTOM);
    let slot = pw / values.len() as f64;
    let base = TOP + ph;
    let mut out = format!(
        "<text x=\"{}\" y=\"20\" font-size=\"13\">{}</text>\n\
         <line x1=\"{x}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"black\"/>\n",
        dx + LEFT - 30.0,
        panel.title,
        dx + LEFT + pw,
        x = dx + LEFT,
    );
    for (i, (kind, v)) in values.iter().enumerate() {
        let h = ph * v / max;
        let x = dx + LEFT + slot * i as f64 + slot * 0.15;
        let color = if *kind == Kind::Lubdub {
            "#1f77b4"
        } else {
            "#aaaaaa"
        };
        out += &format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            base - h,
            slot * 0.7,
            x + slot * 0.35,
            base - h - 4.0,
            group(*v, panel.decimals),
            x + slot * 0.35,
            base + 14.0,
            kind.name(),
        );
    }
    out
}

/// 6993 → "6,993"; 5.568 with 2 decimals → "5.57".
fn group(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    let (int, frac) = text
        .split_once('.')
        .map_or((&text[..], None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{out}.{f}"),
        None => out,
    }
}

/// Checks run by `-- --self-test`.
pub fn self_test() {
    let report = r#"{
  "scenarios": [
    {
      "name": "flood",
      "servers": {
        "lubdub": {"error": null, "notes": [], "values": {"cpu_s_per_m": 5.5}},
        "tokio": {"error": null, "notes": [], "values": {"cpu_s_per_m": 6.5}}
      }
    },
    {
      "name": "idle",
      "servers": {
        "lubdub": {"error": null, "notes": [], "values": {"rss_per_conn_b": 102, "rtt_p99_us": 1287}}
      }
    }
  ]
}"#;
    assert_eq!(figure(report, "flood", "lubdub", "cpu_s_per_m"), Some(5.5));
    assert_eq!(
        figure(report, "idle", "lubdub", "rss_per_conn_b"),
        Some(102.0)
    );
    // tokio has no idle figures: the search stops at the scenario's end.
    assert_eq!(figure(report, "flood", "tokio", "rss_per_conn_b"), None);
    assert_eq!(figure(report, "fill", "lubdub", "held"), None);
    let svg = bars(report).expect("a picture");
    assert_eq!(svg.matches("<rect x=").count(), 4, "{svg}");
    assert!(svg.contains(">5.50<") && svg.contains(">1,287<"), "{svg}");
    assert_eq!(bars("{}"), None);
    assert_eq!(group(6993.0, 0), "6,993");
    assert_eq!(group(1717094.0, 0), "1,717,094");
    assert_eq!(group(102.0, 0), "102");
    assert_eq!(group(5.568, 2), "5.57");
}
