//! The scan's rows as a table, JSON or CSV (stdout; progress is on stderr).

use super::scan::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

const HEADER: [&str; 6] = [
    "REPOSITORY",
    "IMAGE",
    "TAGS",
    "DIGEST",
    "MEDIA TYPE",
    "NOTE",
];

pub fn render(report: &Report, format: Format) -> String {
    let rows: Vec<[String; 6]> = report
        .rows
        .iter()
        .map(|r| {
            [
                r.repository.clone(),
                r.image.clone(),
                r.tags.join(","),
                r.digest.clone(),
                r.media_type.clone(),
                r.note.clone(),
            ]
        })
        .collect();
    match format {
        Format::Json => {
            let v = serde_json::json!({ "schema1": report.rows, "summary": report.summary });
            let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => {
            let mut s = String::from("repository,image,tags,digest,media_type,note\n");
            for r in rows {
                let cells: Vec<String> = r.iter().map(|c| csv_cell(c)).collect();
                s.push_str(&cells.join(","));
                s.push('\n');
            }
            s
        }
        Format::Table => {
            if rows.is_empty() {
                return String::new();
            }
            let mut widths = HEADER.map(str::len);
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: &[String]| {
                let mut l = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i + 1 == cells.len() {
                        l.push_str(c);
                    } else {
                        l.push_str(&format!("{c:<w$}  ", w = widths[i]));
                    }
                }
                l.trim_end().to_string() + "\n"
            };
            let mut s = line(&HEADER.map(str::to_string));
            for r in &rows {
                s.push_str(&line(r));
            }
            s
        }
    }
}

/// RFC 4180: quote cells holding a comma, quote or line break.
fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_cell("a"), "a");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"x\""), "\"say \"\"x\"\"\"");
    }
}
