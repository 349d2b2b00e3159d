//! The measurement's unit tests, on made-up histories.

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
