//! Making a report from what the pipeline measured: [`Report::from_draft`]
//! and its steps.

use std::time::{Duration, Instant};

use super::{
    AttemptOutcome, ErrorCount, FailureKind, FaultRecord, HistoryEntry, LostWrite, PhaseRecord,
    Report, SCHEMA_VERSION, SlowdownRecord, TargetInfo, WorkloadRecord, diagnose,
};
use crate::fault::FaultInfo;
use crate::probe::{History, Outcome};
use crate::slo::{Slo, Violation, fmt_duration};
use crate::timeline::{Event, EventKind, Phase, Timestamp, from_ms, ms};
use crate::verify::{Measurement, Window};

/// A workload's results, as the pipeline hands them over.
pub(crate) struct WorkloadDraft {
    pub summary: crate::workload::WorkloadSummary,
    pub measurement: Measurement,
    /// `Ok(true)` verified, `Ok(false)` no hook, `Err` the hook failed.
    pub verified: Result<bool, String>,
}

/// What the pipeline hands over to make a report.
pub(crate) struct Draft<'a> {
    pub run_id: String,
    pub scenario: String,
    pub seed: Option<u64>,
    pub target: TargetInfo,
    pub started: Instant,
    pub slo: Slo,
    pub history: &'a History,
    pub window: Window,
    /// Each fault's info, monotonic injection time, heal time, and whether marked.
    pub faults: Vec<(FaultInfo, Instant, Option<Timestamp>, bool)>,
    pub measurement: &'a Measurement,
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
    pub workloads: Vec<WorkloadDraft>,
    pub slo_on: Option<String>,
}

impl Report {
    /// Builds the report, checking the measurement against the SLO.
    pub(crate) fn from_draft(d: Draft<'_>) -> Self {
        let m = d.measurement;
        let clock = Clock::of(&d);
        let mut events = d.events;
        events.sort_by_key(|e| e.at);
        let faults = fault_records(&d.faults, m, d.history, &events, &clock);
        // The report's phases: those of the fault whose RTO is the report's.
        let phases = faults
            .iter()
            .filter(|f| f.rto_ms.is_some() && f.rto_ms == m.rto.map(ms))
            .map(|f| f.phases.clone())
            .next()
            .unwrap_or_default();
        let mut warnings = d.warnings;
        warnings.extend(fault_warnings(&faults, &d.slo));
        let (violations, workloads) = verdict(
            &d.slo,
            d.slo_on.as_deref(),
            m,
            &d.workloads,
            &clock,
            &mut warnings,
        );
        let history = history_entries(d.history, &clock);
        let failing_after_promotion: Vec<_> = std::iter::once(("probe".to_string(), &history))
            .chain(
                workloads
                    .iter()
                    .map(|w| (format!("workload {}", w.name), &w.history)),
            )
            .filter_map(|(series, h)| {
                diagnose::failing_after_promotion(&series, &events, clock.origin, h)
            })
            .collect();
        warnings.extend(failing_after_promotion.iter().map(ToString::to_string));
        Report {
            schema_version: SCHEMA_VERSION,
            run_id: d.run_id,
            scenario: d.scenario,
            seed: d.seed,
            target: d.target,
            started_at: Timestamp::from(d.history.wall(d.started)),
            origin: clock.origin,
            duration_ms: ms(d.started.elapsed()),
            window_start_ms: clock.rel(d.window.start),
            window_end_ms: clock.rel(d.window.end),
            fault: faults.first().cloned(),
            faults,
            slo: d.slo.into(),
            rto_ms: m.rto.map(ms),
            write_gap_ms: m.write_gap.map(|g| ms(g.length)),
            write_gap_start_ms: m.write_gap.map(|g| clock.rel(g.start)),
            unexplained_gap_ms: m.unexplained_gap.map(|g| ms(g.length)),
            resolution_ms: ms(m.resolution),
            median_latency_ms: ms(m.median_latency),
            lost_window_ms: ms(m.lost_window),
            writes: m.writes,
            lost: m
                .lost
                .iter()
                .map(|&(writer, seq)| LostWrite { writer, seq })
                .collect(),
            split_brain: m.split_brain_writes > 0,
            split_brain_writes: m.split_brain_writes,
            phases,
            events,
            warnings,
            findings: Vec::new(),
            history,
            workloads,
            failing_after_promotion,
            passed: violations.is_empty(),
            failure: (!violations.is_empty()).then_some(FailureKind::Slo),
            violations: violations.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The report's origin (the first fault's injection, else the window's
/// start), on both clocks.
struct Clock {
    mono: Instant,
    origin: Timestamp,
}

impl Clock {
    fn of(d: &Draft<'_>) -> Self {
        let mono = d.faults.first().map_or(d.window.start, |f| f.1);
        Clock {
            mono,
            origin: Timestamp::from(d.history.wall(mono)),
        }
    }

    /// Milliseconds from the origin to `t` (negative before it).
    fn rel(&self, t: Instant) -> f64 {
        if t >= self.mono {
            ms(t - self.mono)
        } else {
            -ms(self.mono - t)
        }
    }
}

/// Each fault's record, with its RTO split into phases by the marks among
/// `events` (sorted by time).
fn fault_records(
    faults: &[(FaultInfo, Instant, Option<Timestamp>, bool)],
    m: &Measurement,
    history: &History,
    events: &[Event],
    clock: &Clock,
) -> Vec<FaultRecord> {
    let rel = |t: Instant| clock.rel(t);
    let mut faults: Vec<FaultRecord> = faults
        .iter()
        .zip(&m.faults)
        .map(|((info, _, healed, marked), outage)| FaultRecord {
            kind: info.kind.clone(),
            mode: info.mode.clone(),
            victim: info.victim.clone(),
            injected_at: info.injected_at,
            healed_at: *healed,
            marked: *marked,
            rto_ms: outage.rto.map(ms),
            phases: Vec::new(),
            slowdown: outage.slowdown.map(|s| SlowdownRecord {
                outage: outage.outage,
                before: s.before.into(),
                during: s.during.into(),
                after: s.after.map(Into::into),
                factor: s.factor,
                outage_start_ms: outage.outage.then(|| rel(outage.outage_start)),
                longest_gap_ms: ms(s.longest_gap),
            }),
        })
        .collect();
    for (f, outage) in faults.iter_mut().zip(&m.faults) {
        // A degrading fault's RTO runs from the outage's start.
        let from = if f.slowdown.is_some() {
            Timestamp::from(history.wall(outage.outage_start))
        } else {
            f.injected_at
        };
        if let Some(rto) = f.rto_ms {
            f.phases = phases_of(events, from, rto);
        }
    }
    faults
}

/// The probe's attempts, in the report's terms, ordered by start.
fn history_entries(history: &History, clock: &Clock) -> Vec<HistoryEntry> {
    let rel = |t: Instant| clock.rel(t);
    let mut history: Vec<HistoryEntry> = history
        .attempts
        .iter()
        .map(|a| {
            let (outcome, server, timeline, sqlstate, reason) = match &a.outcome {
                Outcome::Acknowledged { server, timeline } => (
                    AttemptOutcome::Acknowledged,
                    Some(server.clone()),
                    Some(*timeline),
                    None,
                    None,
                ),
                Outcome::Failed { sqlstate } => {
                    (AttemptOutcome::Failed, None, None, sqlstate.clone(), None)
                }
                Outcome::Indeterminate { reason } => (
                    AttemptOutcome::Indeterminate,
                    None,
                    None,
                    None,
                    Some(*reason),
                ),
            };
            HistoryEntry {
                writer: a.writer,
                seq: a.seq,
                started_ms: rel(a.started),
                finished_ms: rel(a.finished),
                outcome,
                server,
                timeline,
                sqlstate,
                reason,
                identity: None,
                error: None,
            }
        })
        .collect();
    history.sort_by(|a, b| {
        a.started_ms
            .total_cmp(&b.started_ms)
            .then(a.writer.cmp(&b.writer))
    });
    history
}

/// Warnings about the faults: slowdowns that kept writes waiting longer than
/// `max_rto`, or no fault at all.
fn fault_warnings(faults: &[FaultRecord], slo: &Slo) -> Vec<String> {
    let mut warnings = Vec::new();
    for f in faults {
        if let Some(s) = f.slowdown.filter(|s| !s.outage)
            && s.longest_gap_ms > ms(slo.max_rto)
        {
            warnings.push(format!(
                "under {} no write was acknowledged for {} (longer than max_rto {}), \
                 although none failed: every write went through, slower (p99 {:.0} ms); \
                 a client whose deadline is shorter saw an outage",
                f.kind,
                fmt_duration(from_ms(s.longest_gap_ms)),
                fmt_duration(slo.max_rto),
                s.during.p99_ms
            ));
        }
    }
    if faults.is_empty() {
        warnings.push(
            "no fault was injected or marked: RTO is absent, and the longest write gap \
             is held to max_rto"
                .into(),
        );
    }
    warnings
}

/// The SLO's verdict: RTO on the probe or the workload named by `slo_on`;
/// lost writes on the probe and on every verified workload. Also the
/// workloads' records (a workload without a verification hook gets a
/// warning).
fn verdict(
    slo: &Slo,
    slo_on: Option<&str>,
    m: &Measurement,
    drafts: &[WorkloadDraft],
    clock: &Clock,
    warnings: &mut Vec<String>,
) -> (Vec<Violation>, Vec<WorkloadRecord>) {
    let rel = |t: Instant| clock.rel(t);
    let mut violations = Vec::new();
    match slo_on {
        None => violations.extend(slo.check_rto(m)),
        Some(name) => match drafts.iter().find(|w| w.summary.name == name) {
            Some(w) => violations.extend(slo.check_rto(&w.measurement).into_iter().map(|v| {
                Violation::Workload {
                    name: name.to_string(),
                    violation: Box::new(v),
                    lost_ids: Vec::new(),
                }
            })),
            None => violations.push(Violation::NoSuchWorkload {
                name: name.to_string(),
            }),
        },
    }
    violations.extend(slo.check_rpo(m));
    let mut workloads = Vec::new();
    for w in drafts {
        let name = &w.summary.name;
        let record = workload_record(w, slo_on == Some(name.as_str()), &rel);
        match &w.verified {
            // Lost writes named by the application's identities (order
            // ids), which mean more to its team than writer and seq.
            Ok(true) => {
                for v in slo.check_rpo(&w.measurement) {
                    let lost_ids = match v {
                        Violation::SplitBrain { .. } => Vec::new(),
                        _ => record.lost.clone(),
                    };
                    violations.push(Violation::Workload {
                        name: name.clone(),
                        violation: Box::new(v),
                        lost_ids,
                    });
                }
            }
            Ok(false) => warnings.push(format!(
                "workload {name} has no verification hook: its lost writes are not counted"
            )),
            Err(e) => violations.push(Violation::WorkloadVerification {
                name: name.clone(),
                error: e.clone(),
            }),
        }
        for p in &w.summary.panics {
            violations.push(Violation::WorkloadPanicked {
                name: name.clone(),
                message: p.clone(),
            });
        }
        workloads.push(record);
    }
    (violations, workloads)
}

/// The phases of one fault's RTO from the phase-end marks among `events`
/// (sorted by time): each phase runs from the end of the one before (the
/// first from `injected`) to its mark; a phase without a mark, or whose mark
/// is out of order or after the recovery, is folded into the next;
/// `first_write` ends the RTO. Empty without any mark.
pub(crate) fn phases_of(events: &[Event], injected: Timestamp, rto_ms: f64) -> Vec<PhaseRecord> {
    let end = injected.plus(from_ms(rto_ms));
    let mut out = Vec::new();
    let mut start = injected;
    let mut spent = 0.0;
    for phase in Phase::ALL {
        if phase == Phase::FirstWrite {
            break;
        }
        let mark = events
            .iter()
            .find(|e| e.kind == EventKind::PhaseEnded(phase) && e.at >= start && e.at <= end);
        if let Some(e) = mark {
            let len = e.at.ms_since(start);
            out.push(PhaseRecord {
                name: phase.name().into(),
                ms: len,
                at: start,
            });
            spent += len;
            start = e.at;
        }
    }
    if out.is_empty() {
        return out;
    }
    out.push(PhaseRecord {
        name: Phase::FirstWrite.name().into(),
        // The remainder, so that the phases add up to the RTO exactly.
        ms: (rto_ms - spent).max(0.0),
        at: start,
    });
    out
}

fn workload_record(w: &WorkloadDraft, slo: bool, rel: &dyn Fn(Instant) -> f64) -> WorkloadRecord {
    use crate::workload::WorkloadError;
    let m = &w.measurement;
    let mut latencies: Vec<Duration> = w
        .summary
        .attempts
        .iter()
        .filter(|a| a.result.is_ok())
        .map(|a| a.finished - a.started)
        .collect();
    latencies.sort_unstable();
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let lost: std::collections::HashSet<(u32, u64)> = m.lost.iter().copied().collect();
    let verified = matches!(w.verified, Ok(true));
    let mut writes = m.writes;
    if !verified {
        writes.lost = 0;
    }
    WorkloadRecord {
        name: w.summary.name.clone(),
        slo,
        verified,
        rto_ms: m.rto.map(ms),
        fault_rto_ms: m.faults.iter().map(|f| f.rto.map(ms)).collect(),
        write_gap_ms: m.write_gap.map(|g| ms(g.length)),
        median_latency_ms: ms(m.median_latency),
        p99_latency_ms: ms(p99),
        writes,
        lost: w
            .summary
            .attempts
            .iter()
            .filter(|a| verified && lost.contains(&(a.worker, a.seq)))
            .filter(|a| a.result.is_ok())
            .filter_map(|a| a.identity().map(str::to_string))
            .collect(),
        errors: w
            .summary
            .errors()
            .into_iter()
            .map(|(message, count)| ErrorCount { message, count })
            .collect(),
        panics: w.summary.panics.clone(),
        history: w
            .summary
            .attempts
            .iter()
            .map(|a| {
                let (outcome, error) = match &a.result {
                    Ok(_) => (AttemptOutcome::Acknowledged, None),
                    Err(WorkloadError::Failed(e)) => (AttemptOutcome::Failed, Some(e.clone())),
                    Err(WorkloadError::Indeterminate(e)) => {
                        (AttemptOutcome::Indeterminate, Some(e.clone()))
                    }
                };
                let identity = a.identity().map(str::to_string);
                HistoryEntry {
                    writer: a.worker,
                    seq: a.seq,
                    started_ms: rel(a.started),
                    finished_ms: rel(a.finished),
                    outcome,
                    server: None,
                    timeline: None,
                    sqlstate: None,
                    reason: None,
                    identity,
                    error,
                }
            })
            .collect(),
    }
}
