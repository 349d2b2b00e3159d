//! A failover scenario from start to report: probe, fault, recovery, healing,
//! verification, SLO check.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::Result;
use crate::fault::{Fault, FaultGuard};
use crate::probe::History;
use crate::probe::ProbeConfig;
use crate::report::{Event, FaultInfo, Report, TargetInfo};
use crate::slo::Slo;
use crate::cluster::local::LocalCluster;
use crate::verify::{Measurement, read_back};

/// One failover experiment. `Default` (via [`Scenario::new`]): 3 s warm-up,
/// RTO ≤ 10 s, RPO = 0, default probe, fault held until the service recovers.
#[derive(Debug, Clone)]
#[must_use]
pub struct Scenario {
    name: String,
    slo: Slo,
    warmup: Duration,
    hold: Option<Duration>,
    recovery_timeout: Duration,
    settle: Duration,
    probe: ProbeConfig,
    write_report: bool,
}

impl Scenario {
    /// A scenario called `name` (used for the report file).
    pub fn new(name: impl Into<String>) -> Self {
        Scenario {
            name: name.into(),
            slo: Slo::default(),
            warmup: Duration::from_secs(3),
            hold: None,
            recovery_timeout: Duration::from_secs(60),
            settle: Duration::from_millis(500),
            probe: ProbeConfig::default(),
            write_report: true,
        }
    }

    /// The objectives to check.
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slo = slo;
        self
    }

    /// How long the probe writes before the fault (default 3 s).
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.warmup = warmup;
        self
    }

    /// Keep the fault for exactly `hold`, then heal it, instead of healing once
    /// the service has recovered (use for faults the cluster cannot route around,
    /// such as a short freeze).
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = Some(hold);
        self
    }

    /// How long to wait for an acknowledged write after the fault (default 60 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// The probe's settings.
    pub fn probe(mut self, probe: ProbeConfig) -> Self {
        self.probe = probe;
        self
    }

    /// Whether to write the JSON report (default true).
    pub fn write_report(mut self, write: bool) -> Self {
        self.write_report = write;
        self
    }

    /// Runs the scenario against the local cluster.
    ///
    /// The fault is healed before this returns, on success or error.
    ///
    /// # Errors
    /// When the probe cannot start, the fault cannot be injected or healed, or the
    /// rows cannot be read back. An SLO violation is *not* an error: check
    /// [`Report::passed`].
    pub async fn run<F>(self, cluster: &LocalCluster, fault: F) -> Result<Report>
    where
        F: Fault<LocalCluster>,
    {
        let rw_dsn = cluster.rw_dsn();
        let probe = self.probe.clone().start(&rw_dsn).await?;
        let mut events = vec![Event::new("probe started", SystemTime::now(), None)];
        tokio::time::sleep(self.warmup).await;

        let before = cluster.topology().await?;
        let old_leader = before.leader_name().map(str::to_string);
        let old_timeline = before.timeline();

        let guard = fault.inject(cluster).await?;
        let fault_info = guard.info().clone();
        let fault_at = guard.injected_at();
        events.push(Event::new(
            "fault injected",
            fault_info.injected_at,
            fault_info.node.clone(),
        ));

        let leader_event = Arc::new(Mutex::new(None));
        let watcher = tokio::spawn(watch_leader(
            cluster.clone(),
            old_leader,
            old_timeline,
            leader_event.clone(),
        ));

        let counters = probe.counters_handle();
        let wait_recovery = async {
            let deadline = Instant::now() + self.recovery_timeout;
            while !counters.recovered_since(fault_at) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let healed = match self.hold {
            Some(hold) => {
                tokio::time::sleep(hold).await;
                let healed = guard.heal().await;
                wait_recovery.await;
                healed
            }
            None => {
                wait_recovery.await;
                guard.heal().await
            }
        };
        tokio::time::sleep(self.settle).await;
        watcher.abort();
        let history = probe.stop().await;
        let healed = healed?;
        events.push(Event::new(healed.event, healed.at, healed.detail));
        if let Some(e) = leader_event
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            events.push(e);
        }

        let report = verify_and_report(
            self.name,
            cluster,
            &history,
            (fault_info, fault_at),
            self.slo,
            events,
        )
        .await?;
        if self.write_report {
            let path = report.write_json()?;
            tracing::info!(path = %path.display(), "report written");
        }
        Ok(report)
    }
}

/// Reads the probe's rows back through the cluster's read-write endpoint,
/// measures the history against the fault, and builds the report.
pub(crate) async fn verify_and_report(
    name: String,
    cluster: &LocalCluster,
    history: &History,
    (fault_info, fault_at): (FaultInfo, Instant),
    slo: Slo,
    mut events: Vec<Event>,
) -> Result<Report> {
    let rw_dsn = cluster.rw_dsn();
    let found = read_back(&rw_dsn, &history.run_id, Duration::from_secs(30)).await?;
    let measurement = Measurement::compute(history, fault_at, &found);
    if let Some(t) = measurement.first_ack_after_fault {
        events.push(Event::new(
            "first write acknowledged after the fault",
            history.wall(t),
            None,
        ));
    }
    let target = TargetInfo {
        kind: "local".into(),
        rw_dsn,
        nodes: cluster.nodes().len(),
    };
    Ok(Report::new(
        name,
        target,
        fault_info,
        slo,
        measurement,
        events,
    ))
}

/// Polls the topology and records when a different leader (or a newer timeline)
/// is first seen.
async fn watch_leader(
    cluster: LocalCluster,
    old_leader: Option<String>,
    old_timeline: Option<u32>,
    out: Arc<Mutex<Option<Event>>>,
) {
    loop {
        if let Ok(t) = cluster.topology().await
            && let Some(leader) = t.leader()
            && (Some(&leader.name) != old_leader.as_ref() || leader.timeline > old_timeline)
            && leader.state == "running"
        {
            let detail = match leader.timeline {
                Some(tl) if Some(tl) > old_timeline => format!("{} on timeline {tl}", leader.name),
                _ => leader.name.clone(),
            };
            *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(Event::new(
                "new leader observed",
                SystemTime::now(),
                Some(detail),
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
