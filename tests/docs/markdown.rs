//! Reading the docs: fenced blocks and their markers, headings and their
//! anchors, links, and a text's paragraphs, list items and table rows.

use std::path::Path;

use crate::ROOT;

/// One fenced block of a markdown file.
#[derive(Debug, Clone)]
pub struct Block {
    pub file: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub marker: Option<Marker>,
    pub body: Vec<String>,
}

impl Block {
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Marker {
    Check(String),
    Commands,
    Transcript(String),
    Text(String),
}

pub fn parse_marker(line: &str) -> Option<Marker> {
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
pub fn markdown_files() -> Vec<String> {
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

pub fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

pub fn blocks_of(file: &str, text: &str) -> Vec<Block> {
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

pub fn all_blocks() -> Vec<Block> {
    markdown_files()
        .iter()
        .flat_map(|f| blocks_of(f, &read(f)))
        .collect()
}

/// The blocks marked `check: id`, in file order (README first).
pub fn checked(id: &str) -> Vec<Block> {
    all_blocks()
        .into_iter()
        .filter(|b| b.marker == Some(Marker::Check(id.to_string())))
        .collect()
}

/// Code in a language of its own is not a transcript.
pub fn is_code(lang: &str) -> bool {
    lang.starts_with("rust") || matches!(lang, "yaml" | "toml" | "json")
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, and
/// everything but letters, digits, `-` and `_` dropped.
pub fn anchor(heading: &str) -> String {
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

pub fn anchors_of(text: &str) -> Vec<String> {
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
pub fn links_of(text: &str) -> Vec<String> {
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

/// "about N minutes" (or "N minutes") in `text`, the first.
pub fn minutes(text: &str) -> Option<u32> {
    let at = text.find(" minutes")?;
    let number = text[..at].rsplit(' ').next()?;
    number.parse().ok()
}

/// A markdown text's paragraphs, list items and table rows, each on one
/// line.
pub fn units(text: &str) -> Vec<String> {
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
