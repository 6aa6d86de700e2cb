//! What a scenario produces: rows (metrics), one column of figures per
//! server, and the project's targets judged from lubdub's ratios to the
//! baselines.

use crate::servers::Kind;

/// One row of a scenario's table.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub decimals: usize,
    /// Whether the row gets lubdub ÷ baseline ratios.
    pub ratio: bool,
}

pub const fn m(key: &'static str, label: &'static str, decimals: usize, ratio: bool) -> Metric {
    Metric {
        key,
        label,
        decimals,
        ratio,
    }
}

/// One server's figures in one scenario.
pub struct Column {
    pub kind: Kind,
    /// The column's heading, when it is not the server's name (one server
    /// under several configurations).
    pub label: Option<&'static str>,
    pub values: Vec<(&'static str, f64)>,
    /// Why the server could not be measured at all.
    pub error: Option<String>,
    /// Anything a reader should know about this run (a swarm that failed…).
    pub notes: Vec<String>,
}

impl Column {
    pub fn new(kind: Kind) -> Column {
        Column {
            kind,
            label: None,
            values: Vec::new(),
            error: None,
            notes: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &'static str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.values.push((key, v));
        }
    }

    /// The column's heading: its label, or its server's name.
    pub fn name(&self) -> &'static str {
        self.label.unwrap_or(self.kind.name())
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// One of the project's targets and how this run fared against it.
pub struct Verdict {
    pub target: String,
    /// None when a figure it needs was not measured.
    pub met: Option<bool>,
    pub detail: String,
}

/// A finished scenario.
pub struct Outcome {
    pub name: &'static str,
    pub title: String,
    pub metrics: &'static [Metric],
    pub columns: Vec<Column>,
    pub verdicts: Vec<Verdict>,
}

impl Outcome {
    pub fn value(&self, kind: Kind, key: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|c| c.kind == kind)
            .and_then(|c| c.get(key))
    }

    /// lubdub's figure divided by `base`'s.
    pub fn ratio(&self, key: &str, base: Kind) -> Option<f64> {
        let ours = self.value(Kind::Lubdub, key)?;
        let theirs = self.value(base, key)?;
        (theirs != 0.0).then(|| ours / theirs)
    }

    /// "lubdub ≤ factor × base" (or "<" when strict), with the ratio.
    pub fn at_most(&mut self, key: &str, base: Kind, factor: f64, strict: bool, what: &str) {
        let ratio = self.ratio(key, base);
        let op = if strict { "<" } else { "≤" };
        let target = if factor == 1.0 {
            format!("{what}: lubdub {op} {}", base.name())
        } else {
            format!("{what}: lubdub {op} {factor} × {}", base.name())
        };
        let met = ratio.map(|r| if strict { r < factor } else { r <= factor });
        let detail = match ratio {
            Some(r) => format!("lubdub is {r:.3} × {}", base.name()),
            None => "not measured".to_string(),
        };
        self.verdicts.push(Verdict {
            target,
            met,
            detail,
        });
    }

    pub fn at_least(&mut self, key: &str, base: Kind, factor: f64, what: &str) {
        let ratio = self.ratio(key, base);
        self.verdicts.push(Verdict {
            target: format!("{what}: lubdub ≥ {factor} × {}", base.name()),
            met: ratio.map(|r| r >= factor),
            detail: match ratio {
                Some(r) => format!("lubdub is {r:.3} × {}", base.name()),
                None => "not measured".to_string(),
            },
        });
    }

    pub fn absolute(&mut self, target: &str, key: &str, ok: impl Fn(f64) -> bool, unit: &str) {
        let value = self.value(Kind::Lubdub, key);
        self.verdicts.push(Verdict {
            target: target.to_string(),
            met: value.map(ok),
            detail: match value {
                Some(v) => format!("lubdub: {v:.1}{unit}"),
                None => "not measured".to_string(),
            },
        });
    }
}
