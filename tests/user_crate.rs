//! The README's `cargo nextest` set-up, on a crate of a user's own: a
//! throwaway crate with `chaos-core` as a dev-dependency, two
//! `#[failover_test]`s and the README's `.config/nextest.toml`, run with
//! `cargo nextest run`. Both tests must pass, each in its own process with its
//! own cluster, and the test group must keep them one at a time.
//!
//! The crate is written to `<target>/tmp/user-crate` and built in
//! `<target>/user-crate` (so that repeated runs reuse the build) from the
//! workspace's `Cargo.lock` (so that versions match and no network is
//! needed). Skipped, with a message, when `cargo-nextest` is not
//! installed.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos_core::report::Report;

/// The `.config/nextest.toml` the README shows, byte for byte: the test below
/// fails when the README's copy differs.
const NEXTEST_TOML: &str = r#"# .config/nextest.toml
[test-groups]
chaos-cluster = { max-threads = 1 }

[[profile.default.overrides]]
# Every integration test (tests/*.rs); narrow the filter, e.g. to
# 'binary(failover)', when only some of them boot clusters.
filter = 'kind(test)'
test-group = 'chaos-cluster'
slow-timeout = { period = "60s", terminate-after = 10 }
# Show a passing test's output too: its one-line figures (chaos: … PASSED — RTO …).
success-output = "immediate"
"#;

const FAILOVER_RS: &str = r#"use std::time::Duration;

use chaos_core::prelude::*;

#[failover_test(max_rto = "10s", rpo = 0)]
async fn freeze_primary_half_a_second(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    let freeze = ctx.inject(FreezePrimary::new()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.heal(freeze).await?;
    Ok(())
}

#[failover_test(max_rto = "10s", rpo = 0)]
async fn just_writes(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, acknowledged, _, _) = ctx.counters().snapshot();
    assert!(acknowledged > 0, "the probe wrote nothing");
    Ok(())
}
"#;

const TESTS: [&str; 2] = ["freeze_primary_half_a_second", "just_writes"];

/// The workspace's root directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo`, as the one running this test (or the one on `PATH`).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // This test may itself run under nextest, whose settings (threads,
    // profile, run id) must not leak into the inner run.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("NEXTEST") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn nextest_installed() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes the throwaway crate into `dir`.
fn write_crate(dir: &Path) {
    let core = workspace().join("chaos-core");
    let manifest = format!(
        r#"[package]
name = "user-crate"
version = "0.1.0"
edition = "2024"
publish = false

# Not a member of any workspace around it.
[workspace]

[dev-dependencies]
chaos-core = {{ path = "{}" }}
tokio = {{ version = "1", features = ["time"] }}
"#,
        core.display()
    );
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::create_dir_all(dir.join("tests")).unwrap();
    fs::create_dir_all(dir.join(".config")).unwrap();
    fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    fs::write(dir.join("src/lib.rs"), "//! A user's crate.\n").unwrap();
    fs::write(dir.join("tests/failover.rs"), FAILOVER_RS).unwrap();
    fs::write(dir.join(".config/nextest.toml"), NEXTEST_TOML).unwrap();
    fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

struct Output {
    success: bool,
    text: String,
}

/// Runs `cargo nextest <args>` in `dir`, trying `--offline` first; gives up
/// (killing it) after `limit`.
fn nextest(dir: &Path, target: &Path, args: &[&str], limit: Duration) -> Output {
    let first = run_cargo(dir, target, args, true, limit);
    if !first.success && first.text.contains("offline mode") {
        eprintln!("user_crate: the offline build failed; retrying online");
        return run_cargo(dir, target, args, false, limit);
    }
    first
}

fn run_cargo(dir: &Path, target: &Path, args: &[&str], offline: bool, limit: Duration) -> Output {
    let log = dir.join("nextest.log");
    let file = fs::File::create(&log).unwrap();
    let mut cmd = cargo();
    cmd.arg("nextest").args(args);
    if offline {
        cmd.arg("--offline");
    }
    let mut child = cmd
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CHAOS_REPORT_DIR", dir.join("reports"))
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("cargo nextest starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Cargo's build lines would push what matters (nextest's own lines and a
    // failing test's output) out of a CI log that shows only part of it.
    let text: String = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("Compiling ")
                || l.starts_with("Downloaded ")
                || l.starts_with("Locking "))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        status.is_some(),
        "cargo nextest {args:?} did not finish within {limit:?}:\n{text}"
    );
    Output {
        success: status.is_some_and(|s| s.success()),
        text,
    }
}

/// Seconds in nextest's `[   1.234s]` brackets on lines starting with `word`.
fn durations(text: &str, word: &str) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(word)?;
            let inside = rest.trim_start().strip_prefix('[')?;
            let (secs, after) = inside.split_once(']')?;
            let secs = secs.trim().strip_suffix('s')?.trim().parse().ok()?;
            Some((secs, after.trim().to_string()))
        })
        .collect()
}

#[test]
fn readme_nextest_config_runs_a_users_failover_tests_one_at_a_time() {
    // The README shows this very file.
    let readme = fs::read_to_string(workspace().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{NEXTEST_TOML}```")),
        "README.md's .config/nextest.toml differs from the one tested here:\n{NEXTEST_TOML}"
    );
    if !nextest_installed() {
        // ci/install-deps.sh installs it: under CI its absence is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo-nextest is not installed: run ci/install-deps.sh"
        );
        chaos_tests::skipped(
            "cargo-nextest, cargo install cargo-nextest --locked",
            "user_crate",
        );
        return;
    }

    // Always the same directory, so that a warm run rebuilds nothing; left in
    // place when the test fails, for a look.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join("user-crate");
    let _ = fs::remove_dir_all(&dir);
    write_crate(&dir);
    let target = tmp.parent().unwrap().join("user-crate");

    let started = Instant::now();
    let run = nextest(&dir, &target, &["run"], Duration::from_secs(1200));
    eprintln!(
        "user_crate: cargo nextest run took {:.1?} (build included)",
        started.elapsed()
    );
    assert!(run.success, "cargo nextest run failed:\n{}", run.text);

    // Both tests passed, each reported by nextest…
    let passed = durations(&run.text, "PASS");
    for test in TESTS {
        assert!(
            passed
                .iter()
                .any(|(_, name)| name.ends_with(&format!("failover {test}"))),
            "nextest did not report {test} as passed:\n{}",
            run.text
        );
    }
    // …with its one-line figures, which nextest shows for passing tests only
    // as the README's settings ask (success-output).
    for test in TESTS {
        assert!(
            run.text
                .lines()
                .any(|l| l.trim_start().starts_with("chaos: ")
                    && l.contains(&format!("{test} PASSED — RTO"))),
            "no figures of {test} in nextest's output:\n{}",
            run.text
        );
    }
    assert!(
        run.text.contains("2 tests run: 2 passed"),
        "expected exactly 2 tests, both passed:\n{}",
        run.text
    );
    // …and by its own report: the freeze was injected and lasted.
    let reports: Vec<Report> = fs::read_dir(dir.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| Report::read_json(&p).unwrap())
        .collect();
    for test in TESTS {
        let report = reports
            .iter()
            .find(|r| r.scenario.ends_with(test))
            .unwrap_or_else(|| panic!("no report of {test} in {}", dir.display()));
        assert!(report.passed, "{report}");
    }
    let freeze = reports
        .iter()
        .find(|r| r.scenario.ends_with(TESTS[0]))
        .unwrap();
    assert_eq!(freeze.faults.len(), 1, "{freeze}");
    assert_eq!(freeze.faults[0].kind, "freeze-primary", "{freeze}");
    assert!(
        freeze.rto_ms.is_some_and(|ms| ms >= 500.0),
        "a 500 ms freeze gives an RTO of at least 500 ms: {freeze}"
    );

    // The group took effect: nextest puts both tests in it…
    let groups = nextest(
        &dir,
        &target,
        &["show-config", "test-groups"],
        Duration::from_secs(300),
    );
    assert!(groups.success, "show-config failed:\n{}", groups.text);
    let listed = groups
        .text
        .split_once("group: chaos-cluster")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    for test in TESTS {
        assert!(
            listed.contains(test),
            "{test} is not in the chaos-cluster group:\n{}",
            groups.text
        );
    }
    // …and ran them one at a time: the run lasted at least as long as both
    // tests together. Run in parallel (nextest's default on 2 cores and more),
    // it would last about as long as the longer one.
    let sum: f64 = passed.iter().map(|(s, _)| s).sum();
    let summary = durations(&run.text, "Summary")
        .first()
        .map(|(s, _)| *s)
        .unwrap_or_else(|| panic!("no Summary line in nextest's output:\n{}", run.text));
    assert!(
        summary + 0.01 >= sum,
        "the tests overlapped: the run took {summary:.3}s, the tests {sum:.3}s together:\n{}",
        run.text
    );
    eprintln!(
        "user_crate: tests {} took {sum:.1}s one after the other (run {summary:.1}s)",
        TESTS.join(", ")
    );
    let _ = fs::remove_dir_all(&dir);
}
