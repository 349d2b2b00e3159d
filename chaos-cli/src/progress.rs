//! What a run shows on stderr while it goes: on a terminal, one spinner line
//! (indicatif) redrawn from [`Experiment::progress`](chaos_core::Experiment::progress);
//! otherwise plain lines, one per phase change and at most one every 5 s
//! in between, so that CI logs stay short.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chaos_core::experiment::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is repeated while the phase does not change.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The run's status display on stderr.
#[derive(Debug)]
pub struct Status {
    mode: Mode,
    /// Set by [`finish`](Status::finish): later progress is not shown (a
    /// progress task may outlive an interrupted run for a moment).
    finished: AtomicBool,
    /// Which run of a set is going (`run 3 of 10`), shown before the progress.
    run: Mutex<Option<String>>,
}

#[derive(Debug)]
enum Mode {
    Spinner(ProgressBar),
    Plain(Mutex<Plain>),
}

#[derive(Debug, Default)]
struct Plain {
    phase: Option<Phase>,
    printed: Option<Instant>,
}

impl Status {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            Status {
                mode: Mode::Spinner(bar),
                finished: AtomicBool::new(false),
                run: Mutex::new(None),
            }
        } else {
            Self::plain()
        }
    }

    /// Plain lines, whatever stderr is.
    pub fn plain() -> Self {
        Status {
            mode: Mode::Plain(Mutex::default()),
            finished: AtomicBool::new(false),
            run: Mutex::new(None),
        }
    }

    /// A step outside the experiment (booting, connecting, stopping).
    pub fn step(&self, message: &str) {
        match &self.mode {
            Mode::Spinner(bar) if !self.finished.load(Ordering::SeqCst) => {
                bar.set_message(message.to_string())
            }
            _ => self.line(&format!("chaos: {message}")),
        }
    }

    /// A line on stderr that stays (above the spinner, if there is one).
    pub fn line(&self, text: &str) {
        let print = || {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        };
        match &self.mode {
            Mode::Spinner(bar) if !bar.is_finished() => bar.suspend(print),
            _ => print(),
        }
    }

    /// Which run of a set is going (`run 3 of 10`); shown before the
    /// progress and printed as a line of its own.
    pub fn set_run(&self, run: Option<String>) {
        if let Some(r) = &run {
            self.line(&format!("chaos: {r}"));
        }
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = run;
        if let Mode::Plain(state) = &self.mode {
            // Each run's phases are shown afresh.
            *state.lock().unwrap_or_else(|e| e.into_inner()) = Plain::default();
        }
    }

    /// Shows the experiment's progress.
    pub fn update(&self, p: &Progress) {
        if self.finished.load(Ordering::SeqCst) {
            return;
        }
        let line = match &*self.run.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(run) => format!("{run}: {}", describe(p)),
            None => describe(p),
        };
        match &self.mode {
            Mode::Spinner(bar) => bar.set_message(line),
            Mode::Plain(state) => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let due = state.printed.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
                if state.phase != Some(p.phase) || due {
                    state.phase = Some(p.phase);
                    state.printed = Some(Instant::now());
                    drop(state);
                    self.line(&format!("chaos: {line}"));
                }
            }
        }
    }

    /// Removes the spinner before the report is printed.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        if let Mode::Spinner(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }

    /// A writer for log lines that does not tear the spinner.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            bar: match &self.mode {
                Mode::Spinner(bar) => Some(bar.clone()),
                Mode::Plain(_) => None,
            },
        }
    }
}

/// Writes to stderr, hiding the spinner meanwhile (for `tracing` output).
#[derive(Debug, Clone)]
pub struct LogWriter {
    bar: Option<ProgressBar>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One line: phase, elapsed time, the probe's counts, the primary.
pub fn describe(p: &Progress) -> String {
    format!(
        "{:<9} {:>6.1}s  writes: {} acknowledged, {} failed, {} indeterminate  primary: {}",
        p.phase.to_string(),
        p.elapsed.as_secs_f64(),
        p.acknowledged,
        p.failed,
        p.indeterminate,
        p.primary.as_deref().unwrap_or("none")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_shown_after_finish() {
        let status = Status::plain();
        status.finish();
        status.update(&Progress {
            phase: Phase::Faults,
            elapsed: Duration::ZERO,
            attempted: 0,
            acknowledged: 0,
            failed: 0,
            indeterminate: 0,
            primary: None,
        });
        let Mode::Plain(state) = &status.mode else {
            panic!("plain mode");
        };
        assert_eq!(state.lock().map(|s| s.phase).ok(), Some(None));
    }

    #[test]
    fn a_progress_line_has_every_figure() {
        let line = describe(&Progress {
            phase: Phase::Recovery,
            elapsed: Duration::from_millis(12_345),
            attempted: 10,
            acknowledged: 7,
            failed: 2,
            indeterminate: 1,
            primary: Some("node2".into()),
        });
        assert_eq!(
            line,
            "recovery    12.3s  writes: 7 acknowledged, 2 failed, 1 indeterminate  primary: node2"
        );
    }
}
