//! Verification after recovery: read the probe's rows back and measure RTO, RPO
//! and split-brain from the recorded history.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::probe::{Attempt, History, Outcome, PROBE_TABLE};
use crate::{Error, Result};

/// A probe row's identity: `(writer, seq)`.
pub type WriteId = (u32, u64);

/// Reads back the rows of `run_id` through `rw_dsn` (the current primary),
/// retrying for up to `timeout` while the cluster settles.
///
/// # Errors
/// The last connection or query error once `timeout` has passed.
pub async fn read_back(rw_dsn: &str, run_id: &str, timeout: Duration) -> Result<HashSet<WriteId>> {
    let start = Instant::now();
    loop {
        let attempt = async {
            let client = crate::pg::connect(rw_dsn, Duration::from_secs(2)).await?;
            crate::probe::check_probe_table(&client).await?;
            let rows = client
                .query(
                    &format!("SELECT writer, seq FROM {PROBE_TABLE} WHERE run_id = $1"),
                    &[&run_id],
                )
                .await
                .map_err(|e| Error::pg("reading back the probe's rows", e))?;
            rows.iter()
                .map(|r| {
                    let writer: i32 = r
                        .try_get(0)
                        .map_err(|e| Error::pg("reading chaos_probe.writer", e))?;
                    let seq: i64 = r
                        .try_get(1)
                        .map_err(|e| Error::pg("reading chaos_probe.seq", e))?;
                    Ok((writer as u32, seq as u64))
                })
                .collect::<Result<HashSet<WriteId>>>()
        }
        .await;
        match attempt {
            Ok(found) => return Ok(found),
            // A table of another shape will not change by waiting.
            Err(e @ Error::ClusterState(_)) => return Err(e),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "read-back failed, retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Counts of write attempts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCounts {
    /// All attempts.
    pub attempted: u64,
    /// Commits that returned success.
    pub acknowledged: u64,
    /// Attempts that certainly did not commit.
    pub failed: u64,
    /// Attempts whose outcome the client could not know.
    pub indeterminate: u64,
    /// Acknowledged writes missing after failover: data loss.
    pub lost: u64,
    /// Indeterminate writes that turned out committed.
    pub indeterminate_found: u64,
    /// Indeterminate writes that turned out not committed.
    pub indeterminate_missing: u64,
    /// Indeterminate writes whose outcome nothing can check: an application's
    /// operation that failed without telling which row it meant (a workload
    /// learns a write's identity only from its reply). Neither committed nor
    /// not: unknown. Absent (0) in reports written before it existed.
    #[serde(default)]
    pub indeterminate_unknown: u64,
    /// Writes reported as failed that are present nevertheless (the server said
    /// "error" but committed): a client-visible anomaly, not a loss.
    pub failed_but_present: u64,
}

impl WriteCounts {
    /// What became of the indeterminate writes, in words: `2 committed, 1
    /// not`, with `, 3 unknown` when some could not be checked.
    pub fn indeterminate_outcomes(&self) -> String {
        let mut text = format!(
            "{} committed, {} not",
            self.indeterminate_found, self.indeterminate_missing
        );
        if self.indeterminate_unknown > 0 {
            text.push_str(&format!(", {} unknown", self.indeterminate_unknown));
        }
        text
    }
}

/// When a fault was in effect, as the measurement needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpan {
    /// Monotonic time the fault was in effect.
    pub injected: Instant,
    /// Monotonic time it was healed, if it was.
    pub healed: Option<Instant>,
    /// A degrading fault ([`FaultKind::degrades`](crate::fault::FaultKind::degrades)):
    /// measured as a [`Slowdown`], with an RTO only for an outage it caused.
    pub degrades: bool,
}

/// The measured stretch of a run: from the end of the warm-up to the moment
/// the probe was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (end of the warm-up).
    pub start: Instant,
    /// End (the probe was told to stop).
    pub end: Instant,
}

/// What one fault did to the service.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultOutage {
    /// From the fault to the first acknowledged write that started after the
    /// outage it caused began; for a degrading fault, the outage's own length
    /// (from the last acknowledgement before writes failed to the first
    /// after). `None`: the service never came back, or (a degrading fault,
    /// [`outage`](Self::outage) false) there was no outage.
    pub rto: Option<Duration>,
    /// Whether the fault caused an outage: always for a fault that is not
    /// degrading; for a degrading one, whether some write failed or got no
    /// reply in a stretch without acknowledgements longer than the
    /// resolution (rather than every write acknowledged, only slower).
    pub outage: bool,
    /// Commit latency before, during and after a degrading fault.
    pub slowdown: Option<Slowdown>,
    /// Start of the outage: the last acknowledgement (of a write started after
    /// the fault) before it, or the fault's own time.
    pub outage_start: Instant,
    /// When that first acknowledgement came.
    pub recovered_at: Option<Instant>,
}

/// Commit latencies of acknowledged writes, by the time they started.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// How many writes.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
}

impl Latency {
    fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        let rank = |q: f64| {
            let n = latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
        };
        Latency {
            count: latencies.len(),
            p50: rank(0.5),
            p99: rank(0.99),
        }
    }
}

/// What a degrading fault did to commit latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slowdown {
    /// Writes started in the measured window before the fault.
    pub before: Latency,
    /// Writes started while the fault was in effect (until it was healed, or
    /// the next fault, or the window's end).
    pub during: Latency,
    /// Writes started after it was healed; `None` when it was not.
    pub after: Option<Latency>,
    /// `during.p50 / before.p50` (1 without writes to compare).
    pub factor: f64,
    /// The longest stretch without an acknowledgement while the fault was in
    /// effect.
    pub longest_gap: Duration,
}

/// A stretch without any acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The last acknowledgement before it (or the window's start).
    pub start: Instant,
    /// How long it lasted.
    pub length: Duration,
}

/// What the history says about the outages.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Per fault, in the order given.
    pub faults: Vec<FaultOutage>,
    /// The worst RTO of the faults that caused an outage; `None` when there
    /// was no fault, none caused an outage (only slowdowns), or one of them
    /// never recovered.
    pub rto: Option<Duration>,
    /// The longest time without an acknowledged write over the whole window.
    pub write_gap: Option<Gap>,
    /// The longest such time that no fault explains (it overlaps no fault from
    /// its injection to its recovery or healing). With no fault at all, this is
    /// [`write_gap`](Self::write_gap).
    pub unexplained_gap: Option<Gap>,
    /// How precisely RTO and gaps are known: the pacing interval plus the median
    /// commit latency.
    pub resolution: Duration,
    /// Median latency of acknowledged commits.
    pub median_latency: Duration,
    /// Counts by outcome.
    pub writes: WriteCounts,
    /// The acknowledged writes that are missing, sorted.
    pub lost: Vec<WriteId>,
    /// How much time the lost writes span: from the earliest lost acknowledgement
    /// to the first fault (or to the latest lost acknowledgement, if later). Zero
    /// when nothing was lost.
    pub lost_window: Duration,
    /// Acknowledgements on an older timeline after a newer timeline had already
    /// acknowledged a write: two primaries accepted writes.
    pub split_brain_writes: u64,
}

impl Measurement {
    /// The same measurement for writes whose indeterminate outcomes cannot be
    /// checked (a workload's, see [`WriteCounts::indeterminate_unknown`]):
    /// those count as unknown, not as missing or committed.
    #[must_use]
    pub fn with_indeterminate_unknown(mut self) -> Self {
        let w = &mut self.writes;
        w.indeterminate_unknown += w.indeterminate_found + w.indeterminate_missing;
        w.indeterminate_found = 0;
        w.indeterminate_missing = 0;
        self
    }

    /// Measures `history` over `window` against `faults` (in injection order),
    /// given the set of rows `found` after recovery.
    pub fn compute(
        history: &History,
        faults: &[FaultSpan],
        window: Window,
        found: &HashSet<WriteId>,
    ) -> Self {
        let attempts = &history.attempts;
        let mut acks: Vec<&Attempt> = attempts.iter().filter(|a| a.is_acknowledged()).collect();
        acks.sort_by_key(|a| a.finished);

        let mut writes = WriteCounts {
            attempted: attempts.len() as u64,
            ..WriteCounts::default()
        };
        let mut lost = Vec::new();
        for a in attempts {
            let present = found.contains(&(a.writer, a.seq));
            match a.outcome {
                Outcome::Acknowledged { .. } => {
                    writes.acknowledged += 1;
                    if !present {
                        lost.push((a.writer, a.seq));
                    }
                }
                Outcome::Failed { .. } => {
                    writes.failed += 1;
                    writes.failed_but_present += u64::from(present);
                }
                Outcome::Indeterminate { .. } => {
                    writes.indeterminate += 1;
                    if present {
                        writes.indeterminate_found += 1;
                    } else {
                        writes.indeterminate_missing += 1;
                    }
                }
            }
        }
        lost.sort_unstable();
        writes.lost = lost.len() as u64;
        let reference = faults.first().map_or(window.start, |f| f.injected);
        let lost_set: HashSet<&WriteId> = lost.iter().collect();
        let lost_times: Vec<Instant> = attempts
            .iter()
            .filter(|a| lost_set.contains(&(a.writer, a.seq)))
            .map(|a| a.finished)
            .collect();
        let lost_window = match (lost_times.iter().min(), lost_times.iter().max()) {
            (Some(&first), Some(&last)) => {
                let end = if first < reference {
                    last.max(reference)
                } else {
                    last
                };
                end - first
            }
            _ => Duration::ZERO,
        };

        let mut latencies: Vec<Duration> = acks.iter().map(|a| a.finished - a.started).collect();
        latencies.sort_unstable();
        let median_latency = latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default();
        let resolution = history.interval + median_latency;

        // Per fault: the outage it caused is the longest stretch without an
        // acknowledgement of a write started after the fault, among those that
        // begin before the next fault (or the fault's healing) and are clearly
        // longer than the measurement's resolution; service is back when that
        // stretch ends. Writes that went through before the fault took hold (a
        // graceful stop serving for a moment, a command that has not yet done
        // its damage, one writer failing while another still commits) do not
        // end the outage; replies to writes started before the fault do not
        // count as recovery. A fault that caused no such stretch recovers with
        // the first acknowledgement after it.
        let significant = (resolution * 4).max(Duration::from_millis(50));
        let outages: Vec<FaultOutage> = faults
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = faults.get(i + 1).map(|n| n.injected);
                let horizon = [next, f.healed, Some(window.end)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(window.end)
                    .max(f.injected);
                if f.degrades {
                    // "Before": since the previous fault was healed, or from
                    // the first write (the warm-up's included).
                    let since = i
                        .checked_sub(1)
                        .map_or(Some(history.origin.0), |p| faults[p].healed);
                    let bounds = (since.unwrap_or(f.injected), next, horizon);
                    return degraded(f, bounds, attempts, &acks, window, significant);
                }
                let mut ends: Vec<Instant> = acks
                    .iter()
                    .filter(|a| a.started >= f.injected)
                    .map(|a| a.finished)
                    .collect();
                ends.sort_unstable();
                let mut first = None;
                let mut longest: Option<(Instant, Instant)> = None;
                let mut prev = f.injected;
                for &end in &ends {
                    // Stretches that reach into the next fault are its own,
                    // unless this fault had not recovered before it.
                    let into_next = next.is_some_and(|n| end > n);
                    if (prev >= horizon || into_next) && first.is_some() {
                        break;
                    }
                    first.get_or_insert((prev, end));
                    if end - prev > significant && longest.is_none_or(|(s, e)| end - prev > e - s) {
                        longest = Some((prev, end));
                    }
                    prev = end;
                }
                let chosen = longest.or(first);
                FaultOutage {
                    rto: chosen.map(|(_, e)| e - f.injected),
                    outage: true,
                    slowdown: None,
                    outage_start: chosen.map_or(f.injected, |(s, _)| s),
                    recovered_at: chosen.map(|(_, e)| e),
                }
            })
            .collect();
        let rto = if outages.iter().any(|o| o.outage && o.rto.is_none()) {
            None
        } else {
            outages.iter().filter_map(|o| o.rto).max()
        };

        // Gaps between consecutive acknowledgements over the whole window.
        let mut times: Vec<Instant> = vec![
            acks.iter()
                .map(|a| a.finished)
                .filter(|&t| t <= window.start)
                .max()
                .unwrap_or(window.start),
        ];
        times.extend(
            acks.iter()
                .map(|a| a.finished)
                .filter(|&t| t > window.start && t <= window.end),
        );
        times.push(window.end.max(times[times.len() - 1]));
        let spans: Vec<(Instant, Instant)> = faults
            .iter()
            .zip(&outages)
            .map(|(f, o)| {
                let end = match (o.recovered_at, f.healed) {
                    (Some(r), Some(h)) => r.max(h),
                    (Some(r), None) => r,
                    (None, Some(h)) if !o.outage => h,
                    (None, _) => window.end,
                };
                (f.injected, end)
            })
            .collect();
        let gaps = times.windows(2).map(|w| Gap {
            start: w[0],
            length: w[1] - w[0],
        });
        let explained = |g: &Gap| {
            let end = g.start + g.length;
            spans.iter().any(|&(a, b)| g.start <= b && end >= a)
        };
        let write_gap = gaps.clone().max_by_key(|g| g.length);
        let unexplained_gap = gaps.filter(|g| !explained(g)).max_by_key(|g| g.length);

        let mut newest_timeline = 0u32;
        let mut split_brain_writes = 0;
        for a in &acks {
            if let Outcome::Acknowledged { timeline, .. } = a.outcome {
                if timeline < newest_timeline {
                    split_brain_writes += 1;
                }
                newest_timeline = newest_timeline.max(timeline);
            }
        }

        Measurement {
            faults: outages,
            rto,
            write_gap,
            unexplained_gap,
            resolution,
            median_latency,
            writes,
            lost,
            lost_window,
            split_brain_writes,
        }
    }
}

/// What a degrading fault `f` did (latency "before" from `since`, "during"
/// until `horizon`, stretches up to the `next` fault): its [`Slowdown`] and, if writes failed or
/// got no reply for longer than `significant` while it was in effect, the
/// longest such outage, from the last acknowledgement before it to the first
/// after it (its RTO).
fn degraded(
    f: &FaultSpan,
    (since, next, horizon): (Instant, Option<Instant>, Instant),
    attempts: &[Attempt],
    acks: &[&Attempt],
    window: Window,
    significant: Duration,
) -> FaultOutage {
    let latencies = |from: Instant, to: Instant| {
        Latency::of(
            acks.iter()
                .filter(|a| a.started >= from && a.started < to)
                .map(|a| a.finished - a.started)
                .collect(),
        )
    };
    let before = latencies(since, f.injected);
    let during = latencies(f.injected, horizon);
    let after = f
        .healed
        .filter(|&h| h < window.end)
        .map(|h| latencies(h, next.unwrap_or(window.end).max(h)));
    let mut ends: Vec<Instant> = acks
        .iter()
        .filter(|a| a.started >= f.injected)
        .map(|a| a.finished)
        .filter(|&e| next.is_none_or(|n| e <= n))
        .collect();
    ends.sort_unstable();
    let mut unacknowledged: Vec<Instant> = attempts
        .iter()
        .filter(|a| !a.is_acknowledged() && a.started >= f.injected && a.started < horizon)
        .map(|a| a.started)
        .collect();
    unacknowledged.sort_unstable();
    let failed_within = |s: Instant, e: Instant| {
        let i = unacknowledged.partition_point(|&t| t < s);
        unacknowledged.get(i).is_some_and(|&t| t < e)
    };
    let mut longest_gap = Duration::ZERO;
    let mut outage: Option<(Instant, Instant)> = None;
    let mut prev = f.injected;
    for &end in &ends {
        if prev >= horizon {
            break;
        }
        let stretch = end - prev;
        longest_gap = longest_gap.max(stretch.min(horizon.saturating_duration_since(prev)));
        if stretch > significant
            && failed_within(prev, end)
            && outage.is_none_or(|(s, e)| stretch > e - s)
        {
            outage = Some((prev, end));
        }
        prev = end;
    }
    // Writes that failed after the last acknowledgement, with none after
    // them: an outage that never ended.
    let unrecovered = prev < horizon && failed_within(prev, horizon);
    if prev < horizon {
        longest_gap = longest_gap.max(horizon - prev);
    }
    let factor = if before.count > 0 && during.count > 0 && !before.p50.is_zero() {
        during.p50.as_secs_f64() / before.p50.as_secs_f64()
    } else {
        1.0
    };
    let slowdown = Some(Slowdown {
        before,
        during,
        after,
        factor,
        longest_gap,
    });
    if unrecovered {
        return FaultOutage {
            rto: None,
            outage: true,
            slowdown,
            outage_start: prev,
            recovered_at: None,
        };
    }
    FaultOutage {
        rto: outage.map(|(s, e)| e - s),
        outage: outage.is_some(),
        slowdown,
        outage_start: outage.map_or(f.injected, |(s, _)| s),
        recovered_at: outage.map(|(_, e)| e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::IndeterminateReason;
    use std::time::SystemTime;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    struct Builder {
        t0: Instant,
        attempts: Vec<Attempt>,
        seq: u64,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                t0: Instant::now(),
                attempts: Vec::new(),
                seq: 0,
            }
        }
        fn push(&mut self, writer: u32, start: u64, end: u64, outcome: Outcome) -> WriteId {
            self.seq += 1;
            self.attempts.push(Attempt {
                writer,
                seq: self.seq,
                started: self.t0 + ms(start),
                finished: self.t0 + ms(end),
                outcome,
                connected: None,
            });
            (writer, self.seq)
        }
        fn ack(&mut self, start: u64, end: u64, timeline: u32) -> WriteId {
            let server = format!("127.0.0.1{timeline}:5432");
            self.push(1, start, end, Outcome::Acknowledged { server, timeline })
        }
        fn fail(&mut self, start: u64, end: u64) -> WriteId {
            self.push(
                1,
                start,
                end,
                Outcome::Failed {
                    sqlstate: Some("25006".into()),
                },
            )
        }
        fn unknown(&mut self, start: u64, end: u64) -> WriteId {
            let reason = IndeterminateReason::ConnectionLost;
            self.push(2, start, end, Outcome::Indeterminate { reason })
        }
        fn history(&self) -> History {
            History {
                run_id: "r".into(),
                interval: ms(10),
                origin: (self.t0, SystemTime::now()),
                attempts: self.attempts.clone(),
            }
        }
        fn at(&self, t: u64) -> Instant {
            self.t0 + ms(t)
        }
        /// Faults at the given times; the window runs from t0 to the last reply.
        fn measure(&self, faults: &[u64], found: &HashSet<WriteId>) -> Measurement {
            let spans: Vec<FaultSpan> = faults
                .iter()
                .map(|&t| FaultSpan {
                    injected: self.at(t),
                    healed: None,
                    degrades: false,
                })
                .collect();
            let end = self
                .attempts
                .iter()
                .map(|a| a.finished)
                .max()
                .unwrap_or(self.t0);
            let window = Window {
                start: self.t0,
                end,
            };
            Measurement::compute(&self.history(), &spans, window, found)
        }
    }

    impl Builder {
        /// One degrading fault from `injected` to `healed`; the window runs
        /// from t0 to the last reply.
        fn measure_degrading(&self, injected: u64, healed: u64) -> Measurement {
            let spans = [FaultSpan {
                injected: self.at(injected),
                healed: Some(self.at(healed)),
                degrades: true,
            }];
            let end = self.attempts.iter().map(|a| a.finished).max().unwrap();
            let window = Window {
                start: self.t0,
                end,
            };
            Measurement::compute(&self.history(), &spans, window, &all_acked(self))
        }
    }

    /// Writes every 10 ms from `from` to `to` (exclusive), each taking `latency`.
    fn steady(b: &mut Builder, from: u64, to: u64, latency: u64) {
        let mut t = from;
        while t < to {
            b.ack(t, t + latency, 1);
            t += 10.max(latency);
        }
    }

    #[test]
    fn a_slowdown_without_failures_has_latency_figures_and_no_rto() {
        // 3 ms commits, then 250 ms commits during a throttle from 1000 to
        // 7000 ms (all acknowledged), then 4 ms again.
        let mut b = Builder::new();
        steady(&mut b, 0, 1000, 3);
        steady(&mut b, 1000, 7000, 250);
        steady(&mut b, 7000, 8000, 4);
        let m = b.measure_degrading(1000, 7000);
        let f = &m.faults[0];
        assert!(!f.outage, "{f:?}");
        assert_eq!(f.rto, None);
        assert_eq!(m.rto, None, "no outage, no RTO");
        let s = f.slowdown.expect("a slowdown");
        assert_eq!(s.before.p50, ms(3));
        assert_eq!(s.during.p50, ms(250));
        assert_eq!(s.during.p99, ms(250));
        assert_eq!(s.after.map(|a| a.p50), Some(ms(4)));
        assert!((s.factor - 250.0 / 3.0).abs() < 1e-9, "{}", s.factor);
        assert_eq!(s.longest_gap, ms(250), "one slow commit after another");
        let slo = crate::slo::Slo::max_rto(ms(2000));
        assert!(slo.check_rto(&m).is_empty(), "{:?}", slo.check_rto(&m));
    }

    #[test]
    fn an_outage_within_a_degrading_fault_is_measured_from_its_own_start() {
        // Latency added at 1000 ms; writes fine until 5000, then they fail
        // until 6500 (an outage of 1.5 s late in the fault), then recover.
        let mut b = Builder::new();
        steady(&mut b, 0, 1000, 2);
        steady(&mut b, 1000, 5000, 20);
        for t in (5000..6500).step_by(10) {
            b.fail(t, t + 1);
        }
        steady(&mut b, 6500, 9000, 20);
        let m = b.measure_degrading(1000, 9000);
        let f = &m.faults[0];
        assert!(f.outage);
        // From the last acknowledgement (the write started at 4980 ms,
        // replied at 5000) to the first after (6520).
        assert_eq!(f.rto, Some(ms(6520 - 5000)), "{f:?}");
        assert_eq!(f.outage_start, b.at(5000));
        assert_eq!(m.rto, f.rto);
        // Injection-based, it would have been 5.52 s.
        let slo = crate::slo::Slo::max_rto(ms(2000));
        assert!(slo.check_rto(&m).is_empty(), "{:?}", slo.check_rto(&m));
    }

    #[test]
    fn a_degrading_fault_whose_writes_never_come_back_did_not_recover() {
        let mut b = Builder::new();
        steady(&mut b, 0, 1000, 2);
        for t in (1000..4000).step_by(10) {
            b.fail(t, t + 1);
        }
        let m = b.measure_degrading(1000, 5000);
        let f = &m.faults[0];
        assert!(f.outage && f.rto.is_none(), "{f:?}");
        assert_eq!(m.rto, None);
        let v = crate::slo::Slo::max_rto(ms(2000)).check_rto(&m);
        assert!(
            v.iter()
                .any(|v| matches!(v, crate::slo::Violation::NoRecovery { .. })),
            "{v:?}"
        );
    }

    fn all_acked(b: &Builder) -> HashSet<WriteId> {
        b.attempts
            .iter()
            .filter(|a| a.is_acknowledged())
            .map(|a| (a.writer, a.seq))
            .collect()
    }

    #[test]
    fn outage_gives_rto_and_gap() {
        let mut b = Builder::new();
        for i in 0..10 {
            b.ack(i * 10, i * 10 + 2, 1);
        }
        // fault at 100; failures until 3000; recovery on timeline 2.
        for i in 10..300 {
            b.fail(i * 10, i * 10 + 1);
        }
        b.ack(3000, 3004, 2);
        b.ack(3010, 3012, 2);
        let m = b.measure(&[100], &all_acked(&b));
        assert_eq!(m.rto, Some(ms(2904)));
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(3004 - 92)));
        assert_eq!(m.writes.lost, 0);
        assert_eq!(m.writes.failed, 290);
        assert_eq!(m.split_brain_writes, 0);
        assert_eq!(m.resolution, ms(12), "10 ms pacing + 2 ms median latency");
    }

    #[test]
    fn missing_acknowledged_rows_are_lost() {
        let mut b = Builder::new();
        let ids: Vec<_> = (0..20).map(|i| b.ack(i * 10, i * 10 + 1, 1)).collect();
        let mut found = all_acked(&b);
        found.remove(&ids[3]);
        found.remove(&ids[17]);
        let m = b.measure(&[95], &found);
        assert_eq!(m.writes.lost, 2);
        assert_eq!(m.lost, vec![ids[3], ids[17]]);
        // Lost writes acknowledged at 31 ms and 171 ms; fault at 95 ms.
        assert_eq!(m.lost_window, ms(171 - 31));
    }

    #[test]
    fn indeterminate_writes_are_split_by_presence() {
        let mut b = Builder::new();
        b.ack(0, 1, 1);
        let committed = b.unknown(10, 500);
        b.unknown(20, 500);
        b.ack(600, 601, 2);
        let mut found = all_acked(&b);
        found.insert(committed);
        let m = b.measure(&[5], &found);
        assert_eq!(m.writes.indeterminate, 2);
        assert_eq!(m.writes.indeterminate_found, 1);
        assert_eq!(m.writes.indeterminate_missing, 1);
        assert_eq!(m.writes.lost, 0, "indeterminate writes never count as lost");
        assert_eq!(m.writes.indeterminate_outcomes(), "1 committed, 1 not");
        // A workload's indeterminate writes cannot be looked for: unknown.
        let w = m.with_indeterminate_unknown().writes;
        assert_eq!(
            (
                w.indeterminate,
                w.indeterminate_found,
                w.indeterminate_missing,
                w.indeterminate_unknown
            ),
            (2, 0, 0, 2)
        );
        assert_eq!(w.indeterminate_outcomes(), "0 committed, 0 not, 2 unknown");
        // Reports written before the field existed read as 0 unknown.
        let old: WriteCounts = serde_json::from_str(
            r#"{"attempted":1,"acknowledged":0,"failed":0,"indeterminate":1,"lost":0,
                "indeterminate_found":0,"indeterminate_missing":1,"failed_but_present":0}"#,
        )
        .unwrap();
        assert_eq!(old.indeterminate_unknown, 0);
    }

    #[test]
    fn failed_writes_found_committed_are_flagged() {
        let mut b = Builder::new();
        let f = b.fail(0, 1);
        b.ack(10, 11, 1);
        let mut found = all_acked(&b);
        found.insert(f);
        let m = b.measure(&[0], &found);
        assert_eq!(m.writes.failed_but_present, 1);
    }

    #[test]
    fn old_timeline_acks_after_new_ones_are_split_brain() {
        let mut b = Builder::new();
        b.ack(0, 1, 1);
        b.ack(100, 105, 2); // new primary
        b.ack(90, 110, 1); // old primary still acknowledging
        b.ack(120, 121, 1);
        b.ack(130, 131, 2);
        let m = b.measure(&[50], &all_acked(&b));
        assert_eq!(m.split_brain_writes, 2);
    }

    #[test]
    fn no_outage_means_rto_is_one_commit() {
        let mut b = Builder::new();
        for i in 0..50 {
            b.ack(i * 10, i * 10 + 3, 1);
        }
        let m = b.measure(&[200], &all_acked(&b));
        assert_eq!(m.rto, Some(ms(3)));
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(10)));
        assert_eq!(m.split_brain_writes, 0);
    }

    #[test]
    fn never_recovering_has_no_rto_but_a_gap_to_the_end() {
        let mut b = Builder::new();
        b.ack(0, 2, 1);
        b.fail(50, 60);
        b.fail(900, 1000);
        let m = b.measure(&[10], &all_acked(&b));
        assert_eq!(m.rto, None);
        assert_eq!(m.faults[0].recovered_at, None);
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(998)));
    }

    #[test]
    fn graceful_stop_serving_briefly_counts_the_outage_that_follows() {
        let mut b = Builder::new();
        b.ack(0, 1, 1);
        b.ack(10, 11, 1); // fault at 5: still served
        b.ack(20, 21, 1);
        b.fail(30, 31); // outage begins
        b.fail(40, 41);
        b.ack(1000, 1002, 2);
        let m = b.measure(&[5], &all_acked(&b));
        assert_eq!(m.rto, Some(ms(997)));
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(981)));
    }

    #[test]
    fn in_flight_write_acked_after_fault_does_not_count_as_recovery() {
        let mut b = Builder::new();
        b.ack(0, 2, 1);
        b.ack(5, 400, 1); // started before the fault, replied late
        b.ack(700, 702, 2);
        let m = b.measure(&[10], &all_acked(&b));
        assert_eq!(m.rto, Some(ms(692)));
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(398)));
    }

    #[test]
    fn a_stall_without_any_fault_is_a_gap_nothing_explains() {
        let mut b = Builder::new();
        for i in 0..50 {
            b.ack(i * 10, i * 10 + 1, 1);
        }
        // Nothing acknowledged from 491 to 2500: clients saw 2 s without a commit.
        b.ack(495, 2500, 1);
        for i in 251..300 {
            b.ack(i * 10, i * 10 + 1, 1);
        }
        let m = b.measure(&[], &all_acked(&b));
        assert_eq!(m.rto, None, "no fault, no RTO");
        assert!(m.faults.is_empty());
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(2500 - 491)));
        assert_eq!(m.write_gap.map(|g| g.start), Some(b.at(491)));
        assert_eq!(m.unexplained_gap, m.write_gap);
    }

    #[test]
    fn two_faults_each_have_their_own_rto_and_the_worst_is_the_rto() {
        let mut b = Builder::new();
        for i in 0..10 {
            b.ack(i * 10, i * 10 + 1, 1);
        }
        // Fault 1 at 100: failures until 600.
        for i in 10..60 {
            b.fail(i * 10, i * 10 + 1);
        }
        for i in 60..100 {
            b.ack(i * 10, i * 10 + 1, 2);
        }
        // Fault 2 at 1000: failures until 3000.
        for i in 100..300 {
            b.fail(i * 10, i * 10 + 1);
        }
        b.ack(3000, 3002, 3);
        let m = b.measure(&[100, 1000], &all_acked(&b));
        assert_eq!(m.faults.len(), 2);
        assert_eq!(m.faults[0].rto, Some(ms(601 - 100)));
        assert_eq!(m.faults[1].rto, Some(ms(3002 - 1000)));
        assert_eq!(m.rto, Some(ms(2002)), "the worst of the two");
        assert_eq!(m.write_gap.map(|g| g.length), Some(ms(3002 - 991)));
        let unexplained = m.unexplained_gap.map(|g| g.length).unwrap_or_default();
        assert!(
            unexplained <= ms(10),
            "both outages are explained: {unexplained:?}"
        );
    }

    #[test]
    fn a_fault_that_never_recovers_leaves_no_rto() {
        let mut b = Builder::new();
        b.ack(0, 1, 1);
        b.fail(20, 21);
        b.ack(30, 31, 1);
        b.fail(500, 501);
        b.fail(900, 901);
        let m = b.measure(&[10, 400], &all_acked(&b));
        assert_eq!(m.faults[0].rto, Some(ms(21)));
        assert_eq!(m.faults[1].rto, None);
        assert_eq!(m.rto, None, "one fault never recovered");
    }

    #[test]
    fn writes_before_a_stall_took_hold_are_not_recovery() {
        let mut b = Builder::new();
        for i in 0..10 {
            b.ack(i * 10, i * 10 + 1, 1);
        }
        // Fault "injected" at 100, but the stall only takes hold at 115: the
        // write of 110 goes through; the one of 120 hangs until 1500.
        b.ack(110, 111, 1);
        b.ack(120, 1500, 1);
        for i in 151..160 {
            b.ack(i * 10, i * 10 + 1, 1);
        }
        let m = b.measure(&[100], &all_acked(&b));
        assert_eq!(m.faults[0].rto, Some(ms(1400)), "{m:?}");
        // The same when the late write had a twin on another writer that
        // started after the stall took hold.
        let mut b2 = Builder::new();
        b2.ack(0, 1, 1);
        b2.ack(110, 111, 1);
        b2.push(
            2,
            130,
            1500,
            Outcome::Acknowledged {
                server: "s".into(),
                timeline: 1,
            },
        );
        b2.ack(1510, 1511, 1);
        let m2 = b2.measure(&[100], &all_acked(&b2));
        assert_eq!(m2.faults[0].rto, Some(ms(1400)), "{m2:?}");
    }
}
