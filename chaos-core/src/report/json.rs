//! The JSON report file.

use std::path::{Path, PathBuf};

use super::Report;
use crate::{Error, Result};

/// `$CHAOS_REPORT_DIR`, else `chaos-reports` in cargo's target directory
/// (`$CARGO_TARGET_DIR`, else `target/` of the enclosing workspace found from
/// the current directory), else `./target/chaos-reports`.
pub fn default_report_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHAOS_REPORT_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("chaos-reports");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let root = cwd
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(&cwd);
    root.join("target").join("chaos-reports")
}

/// A file name made of the scenario name's safe characters (`::` and other
/// separators become `_`).
pub fn file_stem(scenario: &str) -> String {
    let s: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "scenario".into() } else { s }
}

/// Writes `contents` to `dir/name`, creating `dir`; errors name the file.
pub(crate) fn write_file(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, contents))
        .map_err(|source| Error::ReportWrite {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

pub(super) fn write(r: &Report, dir: &Path) -> Result<PathBuf> {
    let text = serde_json::to_string_pretty(r)
        .map_err(|e| Error::json_write(format!("the report {}", r.scenario), e))?;
    write_file(
        dir,
        &format!("{}.json", file_stem(&r.scenario)),
        text.as_bytes(),
    )
}

pub(super) fn read(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading the report {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::json_read(format!("the report {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_stem("local failover/kill"), "local_failover_kill");
        assert_eq!(file_stem("a::b"), "a__b");
        assert_eq!(file_stem(""), "scenario");
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_the_file() {
        let file = std::env::temp_dir().join(format!("chaos-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"x").expect("temp file");
        let err = write_file(&file.join("sub"), "r.json", b"{}").unwrap_err();
        let _ = std::fs::remove_file(&file);
        let text = err.to_string();
        assert!(
            text.contains("r.json") && text.contains("CHAOS_REPORT_DIR"),
            "{text}"
        );
    }
}
