//! Printing results: aligned tables for people, JSON for scripts.

use std::io::Write;

/// Output format of the client subcommands.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Writes `rows` under `headers` with columns padded to their widest
/// cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&mut out, &mut headers.iter().copied())?;
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Writes `value` as one line of JSON.
pub fn print_json(value: &serde_json::Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")
}
