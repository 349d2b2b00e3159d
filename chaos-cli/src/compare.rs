//! `chaos compare A B` and `chaos report show REPORT.json`: work on report
//! files alone, so that old reports can be compared and drawn again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chaos_core::report::{Report, picture};
use chaos_core::runs::{Comparison, RUN_SET_KIND, RunSet, Sample};

use crate::args::{CompareArgs, ShowArgs};

/// Prints the comparison, writes its picture (and JSON when asked); 2 when a
/// file is not a report or a set of runs.
pub fn execute(args: &CompareArgs) -> ExitCode {
    let sides = Sample::read(&args.a).and_then(|a| Sample::read(&args.b).map(|b| (a, b)));
    let (a, b) = match sides {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let comparison = Comparison::new(a, b, args.seed);
    print!("{comparison}");
    let html = args
        .html
        .clone()
        .unwrap_or_else(|| beside(&args.b, "comparison.html"));
    if let Err(e) = std::fs::write(
        &html,
        chaos_core::runs::picture::comparison_html(&comparison),
    ) {
        eprintln!("error: writing {}: {e}", html.display());
        return ExitCode::from(1);
    }
    println!("picture: {}", html.display());
    if let Some(json) = &args.json {
        let text = match serde_json::to_string_pretty(&comparison) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = std::fs::write(json, text) {
            eprintln!("error: writing {}: {e}", json.display());
            return ExitCode::from(1);
        }
        println!("json: {}", json.display());
    }
    ExitCode::SUCCESS
}

/// Writes the report's (or set's) page beside it, prints its path, and opens
/// it when asked.
pub fn show(args: &ShowArgs) -> ExitCode {
    let path = &args.report;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return usage(&format!("cannot read {}: {e}", path.display())),
    };
    let is_set = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("kind")
                .and_then(|k| k.as_str())
                .map(|k| k == RUN_SET_KIND)
        })
        .unwrap_or(false);
    let html = if is_set {
        match RunSet::read_json(path) {
            Ok(set) => {
                println!("{}", set.summary_line());
                chaos_core::runs::picture::set_html(&set)
            }
            Err(e) => return not_a_report(path, &e.to_string()),
        }
    } else {
        match Report::read_json(path) {
            Ok(report) => {
                println!("{}", report.summary_line());
                let svg = path.with_extension("svg");
                if let Err(e) = std::fs::write(&svg, picture::report_svg(&report)) {
                    eprintln!("error: writing {}: {e}", svg.display());
                    return ExitCode::from(1);
                }
                picture::report_html(&report)
            }
            Err(e) => return not_a_report(path, &e.to_string()),
        }
    };
    let out = path.with_extension("html");
    if let Err(e) = std::fs::write(&out, html) {
        eprintln!("error: writing {}: {e}", out.display());
        return ExitCode::from(1);
    }
    println!("picture: {}", out.display());
    if args.open {
        match std::process::Command::new("xdg-open").arg(&out).status() {
            Ok(s) if s.success() => {}
            _ => eprintln!(
                "chaos: could not open a browser here (xdg-open); open {} yourself",
                out.display()
            ),
        }
    }
    ExitCode::SUCCESS
}

fn not_a_report(path: &Path, why: &str) -> ExitCode {
    usage(&format!(
        "{} is not a chaos report or set of runs ({why}); expected the JSON written by `chaos \
         run` (with or without --repeat) or by a test",
        path.display()
    ))
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// `dir/<stem of b>.<suffix>`: `variant.runs.json` → `variant.runs.comparison.html`.
fn beside(b: &Path, suffix: &str) -> PathBuf {
    let stem = b
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".json").to_string())
        .unwrap_or_else(|| "comparison".into());
    b.with_file_name(format!("{stem}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_goes_beside_b() {
        assert_eq!(
            beside(Path::new("/r/variant.runs.json"), "comparison.html"),
            PathBuf::from("/r/variant.runs.comparison.html")
        );
        assert_eq!(
            beside(Path::new("after.json"), "comparison.html"),
            PathBuf::from("after.comparison.html")
        );
    }
}
