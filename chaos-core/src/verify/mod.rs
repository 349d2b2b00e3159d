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
        // `Ok(Err(_))`: a table that no wait will fix; `Err(_)`: worth a retry.
        let attempt = async {
            let client = crate::pg::connect(rw_dsn, Duration::from_secs(2)).await?;
            if let Some(misfit) = crate::probe::probe_table_misfit(&client).await? {
                return Ok(Err(misfit));
            }
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
                .map(Ok)
        }
        .await;
        match attempt {
            Ok(Ok(found)) => return Ok(found),
            // A table of another shape will not change by waiting.
            Ok(Err(misfit)) => return Err(misfit),
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
mod tests;
