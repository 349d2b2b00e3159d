//! The JSON report: stable field names that other tools read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::Report;
use crate::{Error, Result};

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

pub(super) fn to_value(r: &Report) -> Value {
    let m = &r.measurement;
    let w = &m.writes;
    let rfc = |t| humantime::format_rfc3339_micros(t).to_string();
    json!({
        "scenario": r.scenario,
        "target": { "kind": r.target.kind, "rw_dsn": redact_dsn(&r.target.rw_dsn), "nodes": r.target.nodes },
        "fault": {
            "kind": r.fault.kind,
            "mode": r.fault.mode,
            "node": r.fault.node,
            "injected_at": rfc(r.fault.injected_at),
        },
        "slo": {
            "max_rto_ms": ms(r.slo.max_rto),
            "max_lost_writes": r.slo.max_lost_window.is_none().then_some(r.slo.max_lost_writes),
            "max_lost_window_ms": r.slo.max_lost_window.map(ms),
        },
        "lost_window_ms": ms(m.lost_window),
        "rto_ms": m.rto.map(ms),
        "write_gap_ms": m.write_gap.map(ms),
        "resolution_ms": ms(m.resolution),
        "writes": {
            "attempted": w.attempted,
            "acknowledged": w.acknowledged,
            "failed": w.failed,
            "indeterminate": w.indeterminate,
            "lost": w.lost,
            "indeterminate_found": w.indeterminate_found,
            "indeterminate_missing": w.indeterminate_missing,
            "failed_but_present": w.failed_but_present,
        },
        "lost_writes": m.lost.iter().map(|(w, s)| json!({"writer": w, "seq": s})).collect::<Vec<_>>(),
        "split_brain": m.split_brain_writes > 0,
        "split_brain_writes": m.split_brain_writes,
        "events": r.events.iter().map(|e| json!({
            "name": e.name,
            "at": rfc(e.at),
            "detail": e.detail,
        })).collect::<Vec<_>>(),
        "passed": r.passed(),
        "violations": r.violations,
    })
}

/// Removes any password from a DSN (URL or key=value form).
pub fn redact_dsn(dsn: &str) -> String {
    if let Some(rest) = dsn
        .strip_prefix("postgresql://")
        .map(|r| ("postgresql://", r))
        .or_else(|| dsn.strip_prefix("postgres://").map(|r| ("postgres://", r)))
    {
        let (scheme, rest) = rest;
        let (auth_end, _) = rest
            .char_indices()
            .find(|&(_, c)| c == '/' || c == '?')
            .unwrap_or((rest.len(), ' '));
        let (authority, tail) = rest.split_at(auth_end);
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{user}@{hosts}")
            }
            None => authority.to_string(),
        };
        let tail: Vec<String> = tail
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.trim_start_matches('?').eq_ignore_ascii_case("password") => {
                    format!("{k}=********")
                }
                _ => kv.to_string(),
            })
            .collect();
        return format!("{scheme}{authority}{}", tail.join("&"));
    }
    dsn.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=********"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `$CHAOS_REPORT_DIR`, else `target/chaos-reports` of the enclosing Cargo
/// workspace (found from the current directory), else `./target/chaos-reports`.
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

/// A file name made of the scenario name's safe characters.
pub(super) fn file_stem(scenario: &str) -> String {
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

pub(super) fn write(r: &Report, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(format!("{}.json", file_stem(&r.scenario)));
    let text = serde_json::to_string_pretty(&to_value(r))?;
    std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_dsn("postgresql://app:s3cret@h1:5432,h2:5433/db?sslmode=require&password=x"),
            "postgresql://app@h1:5432,h2:5433/db?sslmode=require&password=********"
        );
        assert_eq!(
            redact_dsn("host=a port=1 user=app password=s3cret dbname=x"),
            "host=a port=1 user=app password=******** dbname=x"
        );
        let plain =
            "postgresql://postgres@127.0.0.11:5432/postgres?target_session_attrs=read-write";
        assert_eq!(redact_dsn(plain), plain);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_stem("local failover/kill"), "local_failover_kill");
        assert_eq!(file_stem(""), "scenario");
    }
}
