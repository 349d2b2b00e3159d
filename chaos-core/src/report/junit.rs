//! JUnit XML: one test case per failover test, for CI test-result views.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Report;
use crate::{Error, Result};

/// Escapes text for XML attributes and content.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "none".into(),
        |d| format!("{:.3}", d.as_secs_f64() * 1000.0),
    )
}

/// Renders `report` as a JUnit XML document with one test case.
pub fn to_xml(report: &Report, elapsed: Duration) -> String {
    let (class, name) = match report.scenario.rsplit_once("::") {
        Some((c, n)) => (c.to_string(), n.to_string()),
        None => ("chaos".to_string(), report.scenario.clone()),
    };
    let m = &report.measurement;
    let failures = usize::from(!report.passed());
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuite name="chaos" tests="1" failures="{failures}" errors="0" time="{:.3}">"#,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        x,
        r#"  <testcase classname="{}" name="{}" time="{:.3}">"#,
        esc(&class),
        esc(&name),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(x, "    <properties>");
    let props = [
        ("rto_ms", ms(m.rto)),
        ("write_gap_ms", ms(m.write_gap)),
        ("resolution_ms", ms(Some(m.resolution))),
        ("max_rto_ms", ms(Some(report.slo.max_rto))),
        ("lost_writes", m.writes.lost.to_string()),
        ("indeterminate_writes", m.writes.indeterminate.to_string()),
        ("acknowledged_writes", m.writes.acknowledged.to_string()),
        ("split_brain", (m.split_brain_writes > 0).to_string()),
        ("fault", report.fault.kind.clone()),
        ("target", report.target.kind.clone()),
    ];
    for (k, v) in props {
        let _ = writeln!(x, r#"      <property name="{k}" value="{}"/>"#, esc(&v));
    }
    let _ = writeln!(x, "    </properties>");
    if !report.passed() {
        let _ = writeln!(
            x,
            r#"    <failure message="{}" type="slo">{}</failure>"#,
            esc(&report.violations.join("; ")),
            esc(&report.to_string())
        );
    }
    let _ = writeln!(
        x,
        "    <system-out>{}</system-out>",
        esc(&report.to_string())
    );
    let _ = writeln!(x, "  </testcase>");
    let _ = writeln!(x, "</testsuite>");
    x
}

pub(super) fn write(report: &Report, dir: &Path, elapsed: Duration) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(format!("{}.xml", super::json::file_stem(&report.scenario)));
    std::fs::write(&path, to_xml(report, elapsed))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"a<b & "c" 'd'>"#),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(esc("bell\u{7}"), "bell");
    }
}
