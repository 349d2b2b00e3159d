//! What broke the SLO, typed: made by [`Slo::check`](crate::slo::Slo::check)
//! and the report's verdict, written in words ([`Display`](fmt::Display)) in
//! the report's `violations[]`, the summary and JUnit.

use std::fmt;
use std::time::Duration;

use crate::timeline::fmt_duration;
use crate::verify::WriteId;

/// One way a run broke its SLO. Its [`Display`](fmt::Display) is the
/// sentence the report writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// No fault was injected or marked, and a write gap outlasted `max_rto`.
    WriteGap {
        /// The longest gap without an acknowledged write.
        gap: Duration,
        /// The SLO's `max_rto`.
        max_rto: Duration,
    },
    /// A fault's RTO outlasted `max_rto`.
    Rto {
        /// The fault's RTO.
        rto: Duration,
        /// The SLO's `max_rto`.
        max_rto: Duration,
        /// The fault's number (from 1) when the run had several.
        fault: Option<usize>,
    },
    /// No write that started after a fault was acknowledged.
    NoRecovery {
        /// The SLO's `max_rto`.
        max_rto: Duration,
        /// The fault's number (from 1) when the run had several.
        fault: Option<usize>,
    },
    /// A write gap that no fault explains outlasted `max_rto`.
    UnexplainedGap {
        /// The gap.
        gap: Duration,
        /// The SLO's `max_rto`.
        max_rto: Duration,
    },
    /// More acknowledged writes were lost than allowed.
    LostWrites {
        /// How many were lost.
        lost: u64,
        /// How many the SLO allows.
        allowed: u64,
        /// The first few lost writes.
        sample: Vec<WriteId>,
    },
    /// The lost writes span a longer window than allowed.
    LostWindow {
        /// The span of the lost writes.
        window: Duration,
        /// The window the SLO allows.
        allowed: Duration,
        /// How many were lost.
        lost: u64,
    },
    /// Writes were acknowledged on an older timeline after the new primary
    /// had acknowledged writes: two primaries accepted writes.
    SplitBrain {
        /// How many such writes.
        writes: u64,
    },
    /// The SLO is asserted on a workload (`slo_on`) that did not run.
    NoSuchWorkload {
        /// The workload's name.
        name: String,
    },
    /// A violation of one of the application's workloads.
    Workload {
        /// The workload's name.
        name: String,
        /// What it broke.
        violation: Box<Violation>,
        /// The application's identities of its lost writes (the first few),
        /// for lost-write violations.
        lost_ids: Vec<String>,
    },
    /// A workload's verification hook failed.
    WorkloadVerification {
        /// The workload's name.
        name: String,
        /// The hook's error, in words.
        error: String,
    },
    /// A workload panicked.
    WorkloadPanicked {
        /// The workload's name.
        name: String,
        /// The panic's message.
        message: String,
    },
}

impl Violation {
    /// Whether the violation is about availability (RTO, write gaps), as
    /// opposed to durability (lost writes, split-brain).
    pub fn is_availability(&self) -> bool {
        match self {
            Violation::WriteGap { .. }
            | Violation::Rto { .. }
            | Violation::NoRecovery { .. }
            | Violation::UnexplainedGap { .. } => true,
            Violation::Workload { violation, .. } => violation.is_availability(),
            _ => false,
        }
    }
}

/// ` (fault N)` for a run with several faults.
fn which(fault: Option<usize>) -> String {
    fault.map(|n| format!(" (fault {n})")).unwrap_or_default()
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::WriteGap { gap, max_rto } => write!(
                f,
                "write gap {} exceeds max_rto {}: no fault was injected or marked, and \
                 clients saw that long without an acknowledged write",
                fmt_duration(*gap),
                fmt_duration(*max_rto)
            ),
            Violation::Rto {
                rto,
                max_rto,
                fault,
            } => write!(
                f,
                "RTO {} exceeds max_rto {}{} (writes were impossible for longer \
                 than allowed)",
                fmt_duration(*rto),
                fmt_duration(*max_rto),
                which(*fault)
            ),
            Violation::NoRecovery { max_rto, fault } => write!(
                f,
                "no write that started after the fault{} was acknowledged: the \
                 service did not recover (max_rto {})",
                which(*fault),
                fmt_duration(*max_rto)
            ),
            Violation::UnexplainedGap { gap, max_rto } => write!(
                f,
                "write gap {} exceeds max_rto {} and no injected or marked fault explains \
                 it: clients saw an outage nobody caused on purpose",
                fmt_duration(*gap),
                fmt_duration(*max_rto)
            ),
            Violation::LostWrites {
                lost,
                allowed,
                sample,
            } => {
                let sample: Vec<String> = sample
                    .iter()
                    .map(|(w, s)| format!("writer {w} seq {s}"))
                    .collect();
                write!(
                    f,
                    "{lost} acknowledged writes lost (allowed: {allowed}), e.g. {}",
                    sample.join(", ")
                )
            }
            Violation::LostWindow {
                window,
                allowed,
                lost,
            } => write!(
                f,
                "lost writes span {} (allowed window: {}): {lost} acknowledged writes lost",
                fmt_duration(*window),
                fmt_duration(*allowed)
            ),
            Violation::SplitBrain { writes } => write!(
                f,
                "split-brain: {writes} writes acknowledged on an older timeline after the new \
                 primary had acknowledged writes (two primaries accepted writes)"
            ),
            Violation::NoSuchWorkload { name } => write!(
                f,
                "the SLO is asserted on the workload `{name}` (slo_on), but no workload of \
                 that name ran"
            ),
            Violation::Workload {
                name,
                violation,
                lost_ids,
            } => {
                write!(f, "workload {name}: {violation}")?;
                if !lost_ids.is_empty() {
                    write!(
                        f,
                        "; lost identities: {}{}",
                        lost_ids[..lost_ids.len().min(5)].join(", "),
                        if lost_ids.len() > 5 { ", …" } else { "" }
                    )?;
                }
                Ok(())
            }
            Violation::WorkloadVerification { name, error } => {
                write!(f, "workload {name}: verification failed: {error}")
            }
            Violation::WorkloadPanicked { name, message } => {
                write!(f, "workload {name} panicked: {message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_names_its_lost_identities_but_not_for_split_brain() {
        let lost = Violation::Workload {
            name: "orders".into(),
            violation: Box::new(Violation::LostWrites {
                lost: 6,
                allowed: 0,
                sample: vec![(1, 2)],
            }),
            lost_ids: (1..=6).map(|i| format!("o{i}")).collect(),
        };
        assert_eq!(
            lost.to_string(),
            "workload orders: 6 acknowledged writes lost (allowed: 0), e.g. writer 1 seq 2; \
             lost identities: o1, o2, o3, o4, o5, …"
        );
        assert!(!lost.is_availability());
        let rto = Violation::Rto {
            rto: Duration::from_millis(2_500),
            max_rto: Duration::from_secs(2),
            fault: Some(2),
        };
        assert!(rto.is_availability());
        assert_eq!(
            rto.to_string(),
            "RTO 2.500s exceeds max_rto 2.000s (fault 2) (writes were impossible for longer \
             than allowed)"
        );
    }
}
