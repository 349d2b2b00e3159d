//! The configuration advisor: which settings of a CNPG `Cluster` cost a run
//! its RTO, measured, and where the spec contradicts the SLO a test asserts.
//!
//! Two kinds of findings:
//!
//! - **Measured** ([`advise_run`], rules in [`measured`]): after a run, each
//!   measured phase is attributed to the settings that govern it, and each
//!   setting gets the time it cost in this run (a detection+election of
//!   16.1 s after a kill, with a 15 s primary lease: ~15 s the lease). They
//!   are ranked by that cost, and the costliest is what the run's summary
//!   names.
//! - **Checklist** ([`advise`]): where the spec contradicts the SLO, before
//!   any fault. In a run's findings they come after the measured ones,
//!   marked as not measured.
//!
//! [`advise`] returns one [`Advice`] per contradiction, each naming the
//! field, its value (CRD defaults included: an absent field is advised on by
//! its default), what it costs and how to fix it. The rules follow the
//! seed's measured plan (`../shared/context/seed-rto-rpo-plan.md`):
//!
//! | rule | fires when |
//! |---|---|
//! | RPO | the SLO asks for RPO = 0 and replication is asynchronous (no `postgresql.synchronous`, no `maxSyncReplicas`), or `dataDurability: preferred`, or legacy `maxSyncReplicas` with `minSyncReplicas: 0` |
//! | instances | fewer than 2 instances (nothing to fail over to); or `dataDurability: required` waits for as many standbys as there are (one lost standby blocks every write) |
//! | `primaryLease` | `leaseDurationSeconds` set above half the RTO: a killed primary's lease blocks the failover until it expires (absent, the operator's version decides whether there is a lease: not advised on) |
//! | `failoverDelay` | above 0: every unplanned failover waits that long |
//! | `switchoverDelay` | above the SLO's RTO: a switchover may keep writes down that long |
//! | probes | a probe's worst case (`initialDelaySeconds + periodSeconds × failureThreshold`, or `livenessProbeTimeout`, default 30 s) above half the RTO |
//! | `checkpoint_timeout` | above 1 min (PostgreSQL's default is 5 min): more WAL to replay at an end of recovery |
//! | `walStorage` | absent: WAL shares the data volume |
//! | `smartShutdownTimeout` | above half the RTO: a graceful delete of the primary waits for clients |
//! | `stopDelay` | above the RTO: a graceful delete may take that long at worst |
//! | `primaryUpdateMethod` | `restart`: updates restart the primary in place, no failover |
//!
//! "Half the RTO" leaves the other half to election, promotion and routing,
//! which the seed measured at several seconds together.

pub mod measured;
mod settings;

use std::fmt;
use std::time::Duration;

use super::crd::{
    ClusterSpec, DEFAULT_SMART_SHUTDOWN_TIMEOUT, DEFAULT_STOP_DELAY, DEFAULT_SWITCHOVER_DELAY,
    DataDurability, PrimaryUpdateMethod,
};
use crate::slo::{Slo, fmt_duration};
use crate::timeline::Phase;
use settings::{
    Lease, Liveness, checkpoint_timeout, has_timing, secs, secs64, timings_text, value_or_default,
};

pub use measured::advise_run;
pub use settings::{
    CHECKPOINT_TIMEOUT_ADVISED, DEFAULT_LIVENESS_PROBE_TIMEOUT, DEFAULT_PRIMARY_LEASE, field,
    parse_pg_duration,
};

/// One contradiction between a Cluster spec and the asserted SLO.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Advice {
    /// The field's path in the Cluster, e.g. `spec.failoverDelay`.
    pub field: String,
    /// Its value, e.g. `30` or `absent (WAL on the data volume)`.
    pub value: String,
    /// What it costs against the SLO, in words.
    pub cost: String,
    /// What to change.
    pub fix: String,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}: {}. Fix: {}",
            self.field, self.value, self.cost, self.fix
        )
    }
}

impl Advice {
    fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        cost: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Advice {
            field: field.into(),
            value: value.into(),
            cost: cost.into(),
            fix: fix.into(),
        }
    }

    /// The RTO phases the field governs (none for the RPO and availability
    /// rules).
    pub fn phases(&self) -> Vec<Phase> {
        match self.field.as_str() {
            field::LEASE_DURATION => vec![Phase::Detection, Phase::Election],
            field::FAILOVER_DELAY
            | field::LIVENESS_PROBE
            | field::LIVENESS_PROBE_TIMEOUT
            | field::SMART_SHUTDOWN_TIMEOUT
            | field::STOP_DELAY => vec![Phase::Detection],
            field::WAL_RECEIVER_TIMEOUT => vec![Phase::Election],
            field::SWITCHOVER_DELAY | field::CHECKPOINT_TIMEOUT | field::WAL_STORAGE => {
                vec![Phase::Promotion]
            }
            field::STARTUP_PROBE | field::READINESS_PROBE => vec![Phase::Routing],
            _ => Vec::new(),
        }
    }
}

/// Where `spec` contradicts `slo`: one [`Advice`] per finding, in the order
/// of the table in the [module docs](self). Empty when the spec is fine.
pub fn advise(spec: &ClusterSpec, slo: &Slo) -> Vec<Advice> {
    let budget = Budget::of(slo);
    let mut out = Vec::new();
    rpo_rules(spec, slo, &mut out);
    instance_rules(spec, &mut out);
    lease_rule(spec, &budget, &mut out);
    delay_rules(spec, &budget, &mut out);
    probe_rules(spec, &budget, &mut out);
    storage_rules(spec, &mut out);
    shutdown_rules(spec, &budget, &mut out);
    update_rule(spec, &mut out);
    out
}

/// The SLO's RTO as the rules compare with it.
struct Budget {
    rto: Duration,
    half: Duration,
    text: String,
}

impl Budget {
    fn of(slo: &Slo) -> Self {
        Budget {
            rto: slo.max_rto,
            half: slo.max_rto / 2,
            text: fmt_duration(slo.max_rto),
        }
    }
}

/// RPO = 0 asked, but commits may be acknowledged without a standby.
fn rpo_rules(spec: &ClusterSpec, slo: &Slo, out: &mut Vec<Advice>) {
    if !slo.requires_zero_loss() {
        return;
    }
    let legacy_max = spec.max_sync_replicas.unwrap_or(0);
    let legacy_min = spec.min_sync_replicas.unwrap_or(0);
    match spec.synchronous().filter(|s| s.number > 0) {
        None if legacy_max <= 0 => out.push(Advice::new(
            field::SYNCHRONOUS,
            "absent (asynchronous replication)",
            "the SLO asks for RPO = 0, but a commit is acknowledged before any standby \
             has it: a failover loses the writes not yet streamed",
            "set postgresql.synchronous: {method: any, number: 1, dataDurability: required}",
        )),
        None if legacy_min <= 0 => out.push(Advice::new(
            field::MIN_SYNC_REPLICAS,
            format!("{legacy_min} (with maxSyncReplicas: {legacy_max})"),
            "the SLO asks for RPO = 0, but with no synchronous standby available the \
             primary keeps acknowledging commits asynchronously: a failover then loses them",
            "use postgresql.synchronous with dataDurability: required (or set \
             minSyncReplicas: 1)",
        )),
        Some(s) if s.data_durability_or_default() == DataDurability::Preferred => {
            out.push(Advice::new(
                field::DATA_DURABILITY,
                "preferred",
                "the SLO asks for RPO = 0, but when the synchronous standbys are \
                 unavailable the primary keeps acknowledging commits without them: a \
                 failover then loses them",
                "dataDurability: required (writes wait for a standby instead)",
            ));
        }
        None | Some(_) => {}
    }
}

/// Nothing to fail over to, or every standby required for every commit.
fn instance_rules(spec: &ClusterSpec, out: &mut Vec<Advice>) {
    if spec.instances < 2 {
        out.push(Advice::new(
            field::INSTANCES,
            spec.instances.to_string(),
            "no standby to fail over to: the RTO is a pod restart or rescheduling, and a lost \
             volume loses every write",
            "instances: 3 (a primary and two standbys)",
        ));
        return;
    }
    let Some(s) = spec.synchronous().filter(|s| s.number > 0) else {
        return;
    };
    let standbys = spec.instances - 1;
    if s.data_durability_or_default() == DataDurability::Required && s.number >= standbys {
        out.push(Advice::new(
            field::SYNCHRONOUS_NUMBER,
            format!("{} (with {} standbys)", s.number, standbys),
            "dataDurability: required waits for every standby: losing one blocks every \
             write until it is back, an outage no failover ends",
            format!(
                "instances: {} (one standby more than number) or number: {}",
                s.number + 2,
                (standbys - 1).max(1)
            ),
        ));
    }
}

/// The primary lease, when the spec sets it: a killed primary's lease
/// blocks the failover until it expires.
fn lease_rule(spec: &ClusterSpec, budget: &Budget, out: &mut Vec<Advice>) {
    let lease = Lease::of(spec);
    if !lease.explicit || secs(lease.duration) <= budget.half {
        return;
    }
    out.push(Advice::new(
        field::LEASE_DURATION,
        lease.value(),
        format!(
            "a primary killed or cut off without releasing its lease is replaced only when the \
             lease expires, up to {} s after it last renewed it, more than half the SLO's {}",
            lease.duration, budget.text
        ),
        "leaseDurationSeconds: 5 with renewDeadlineSeconds: 3 (it must stay below the \
         lease) and retryPeriodSeconds: 1",
    ));
}

/// Delays the operator adds to a failover or a switchover.
fn delay_rules(spec: &ClusterSpec, budget: &Budget, out: &mut Vec<Advice>) {
    let failover_delay = spec.failover_delay_or_default();
    if failover_delay > 0 {
        let over = if secs(failover_delay) >= budget.rto {
            format!(", already more than the SLO's {}", budget.text)
        } else {
            String::new()
        };
        out.push(Advice::new(
            field::FAILOVER_DELAY,
            failover_delay.to_string(),
            format!(
                "the operator waits {failover_delay} s after finding the primary failing before \
                 it fails over: every unplanned failover's RTO grows by {failover_delay} s{over}"
            ),
            "failoverDelay: 0 (the default)",
        ));
    }
    let switchover_delay = spec.switchover_delay_or_default();
    if secs(switchover_delay) > budget.rto {
        out.push(Advice::new(
            field::SWITCHOVER_DELAY,
            value_or_default(spec.switchover_delay, DEFAULT_SWITCHOVER_DELAY),
            format!(
                "a switchover (kubectl cnpg promote, primaryUpdateMethod: switchover) gives the \
                 old primary up to {switchover_delay} s to shut down while writes wait, more than \
                 the SLO's {}; unplanned failovers are not affected",
                budget.text
            ),
            "switchoverDelay: a few seconds more than the primary needs to archive its last WAL \
             (the seed used 15)",
        ));
    }
}

/// Liveness, startup and readiness probes slower than half the RTO.
fn probe_rules(spec: &ClusterSpec, budget: &Budget, out: &mut Vec<Advice>) {
    let rto_text = &budget.text;
    let liveness = Liveness::of(spec);
    if secs64(liveness.worst) > budget.half {
        out.push(Advice::new(
            liveness.field,
            liveness.value,
            format!(
                "a primary that hangs without exiting fails its liveness probe only after \
                 {} s, more than half the SLO's {rto_text}: until then it is \
                 neither restarted nor failed over",
                liveness.worst
            ),
            "a liveness budget well under half the RTO, e.g. livenessProbeTimeout: 3 or \
             probes.liveness: {periodSeconds: 1, failureThreshold: 3}",
        ));
    }
    let probes = spec.probes.as_ref();
    if let Some(startup) = probes.and_then(|p| p.startup.as_ref()) {
        // A started instance is Ready at the next successful startup probe.
        let t = &startup.timings;
        let ready_after = i64::from(t.initial_delay_seconds.unwrap_or(0))
            + i64::from(t.period_seconds.unwrap_or(10));
        if secs64(ready_after) > budget.half {
            out.push(Advice::new(
                field::STARTUP_PROBE,
                timings_text(t),
                format!(
                    "an instance restarted in place is Ready only at its next startup probe, \
                     up to {ready_after} s after PostgreSQL is up, more than half the SLO's \
                     {rto_text}"
                ),
                "probes.startup: {initialDelaySeconds: 0, periodSeconds: 1..5} (keep \
                 failureThreshold × periodSeconds large enough to start)",
            ));
        }
    }
    if let Some(readiness) = probes.and_then(|p| p.readiness.as_ref())
        && has_timing(&readiness.timings)
    {
        let worst = readiness.timings.worst_case_seconds();
        if secs64(worst) > budget.half {
            out.push(Advice::new(
                field::READINESS_PROBE,
                timings_text(&readiness.timings),
                format!(
                    "a primary that stops answering is marked not Ready — which starts the \
                     failover — only after {worst} s, more than half the SLO's {rto_text}"
                ),
                "probes.readiness: {periodSeconds: 1..2, failureThreshold: 3}",
            ));
        }
    }
}

/// Checkpoint interval and WAL volume: the I/O of an end of recovery.
fn storage_rules(spec: &ClusterSpec, out: &mut Vec<Advice>) {
    if let Some((d, text)) = checkpoint_timeout(spec)
        && d > CHECKPOINT_TIMEOUT_ADVISED
    {
        out.push(Advice::new(
            field::CHECKPOINT_TIMEOUT,
            text,
            format!(
                "an end of recovery (promotion, restart in place) replays the WAL since the last \
                 checkpoint or restartpoint, up to {} of it, and the promoted primary's first \
                 checkpoint has as much to write; the seed measured 5.6 s of WAL recovery at 5min",
                humantime::format_duration(d)
            ),
            "checkpoint_timeout: 1min with checkpoint_completion_target: 0.9 (more, smaller \
             checkpoints)",
        ));
    }
    if spec.wal_storage.is_none() {
        out.push(Advice::new(
            field::WAL_STORAGE,
            "absent (WAL on the data volume)",
            "WAL writes, WAL replay and the promotion's end-of-recovery I/O compete with data \
             file I/O on one volume; the seed expected 1-2 s of promotion back from a separate \
             WAL volume",
            "add walStorage (its own volume, e.g. a tenth of storage.size on a fast storage \
             class); the Cluster must be recreated",
        ));
    }
}

/// Graceful deletes of the primary: smart shutdown and the grace period.
fn shutdown_rules(spec: &ClusterSpec, budget: &Budget, out: &mut Vec<Advice>) {
    let smart = spec.smart_shutdown_timeout_or_default();
    if secs(smart) > budget.half {
        out.push(Advice::new(
            field::SMART_SHUTDOWN_TIMEOUT,
            value_or_default(spec.smart_shutdown_timeout, DEFAULT_SMART_SHUTDOWN_TIMEOUT),
            format!(
                "a graceful delete of the primary (kubectl delete pod, a node drain) first waits \
                 up to {smart} s for clients to disconnect, refusing new connections, and the \
                 failover starts only after: more than half the SLO's {}",
                budget.text
            ),
            "smartShutdownTimeout: 0..5 (go to a fast shutdown at once)",
        ));
    }
    let stop = spec.stop_delay_or_default();
    if secs(stop) > budget.rto {
        out.push(Advice::new(
            field::STOP_DELAY,
            value_or_default(spec.stop_delay, DEFAULT_STOP_DELAY),
            format!(
                "a graceful delete of the primary may take up to {stop} s (the pods' grace \
                 period) before the failover starts, when the shutdown is slow (e.g. archiving \
                 WAL), more than the SLO's {}",
                budget.text
            ),
            "stopDelay: smartShutdownTimeout plus the few seconds a fast shutdown needs",
        ));
    }
}

/// Updates that restart the primary in place.
fn update_rule(spec: &ClusterSpec, out: &mut Vec<Advice>) {
    if spec.primary_update_method_or_default() != PrimaryUpdateMethod::Restart {
        return;
    }
    let value = match spec.primary_update_method {
        Some(_) => "restart".to_string(),
        None => "restart (default)".to_string(),
    };
    out.push(Advice::new(
        field::PRIMARY_UPDATE_METHOD,
        value,
        "a rolling update (new image, a parameter needing a restart) restarts the primary in \
         place: writes are down for the whole shutdown, crash recovery and start, with no \
         failover to shorten it",
        "primaryUpdateMethod: switchover (writes are down only for a switchover)",
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cnpg::crd::Cluster;
    use std::path::PathBuf;

    pub(super) fn fixture_spec(name: &str) -> ClusterSpec {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/fixtures");
        assert!(
            dir.join("README.md").is_file(),
            "CNPG fixtures not found at {}: these tests need ../shared/reference/fixtures \
             next to the workspace (the project's shared reference directory)",
            dir.display()
        );
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("cannot read fixture {name}: {e}"));
        let c: Cluster = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("fixture {name} is not a Cluster: {e}"));
        c.spec
    }

    fn spec(json: serde_json::Value) -> ClusterSpec {
        serde_json::from_value(json).expect("a ClusterSpec")
    }

    /// A spec tuned as the seed ends up: nothing to advise at RTO 10 s, RPO 0.
    fn tuned() -> serde_json::Value {
        serde_json::json!({
            "instances": 3,
            "failoverDelay": 0,
            "switchoverDelay": 5,
            "smartShutdownTimeout": 2,
            "stopDelay": 8,
            "livenessProbeTimeout": 3,
            "primaryUpdateMethod": "switchover",
            "postgresql": {
                "parameters": {"checkpoint_timeout": "1min", "checkpoint_completion_target": "0.9"},
                "synchronous": {"method": "any", "number": 1, "dataDurability": "required"}
            },
            "probes": {"startup": {"type": "streaming", "maximumLag": "1Gi", "periodSeconds": 5,
                                    "timeoutSeconds": 5, "failureThreshold": 20}},
            "storage": {"size": "10Gi"},
            "walStorage": {"size": "1Gi"}
        })
    }

    fn fields(advice: &[Advice]) -> Vec<&str> {
        advice.iter().map(|a| a.field.as_str()).collect()
    }

    fn with(patch: serde_json::Value) -> ClusterSpec {
        let mut base = tuned();
        merge(&mut base, patch);
        spec(base)
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        b.remove(&k);
                    } else {
                        merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            (b, p) => *b = p,
        }
    }

    #[test]
    fn a_tuned_spec_gets_no_advice() {
        let advice = advise(&spec(tuned()), &Slo::default());
        assert!(advice.is_empty(), "{advice:#?}");
    }

    #[test]
    fn the_fixture_cluster_contradicts_a_10s_rpo_0_slo() {
        let advice = advise(
            &fixture_spec("cnpg_cluster_01_healthy.json"),
            &Slo::default(),
        );
        assert_eq!(
            fields(&advice),
            vec![
                "spec.postgresql.synchronous",
                "spec.switchoverDelay",
                "spec.livenessProbeTimeout",
                "spec.postgresql.parameters.checkpoint_timeout",
                "spec.walStorage",
                "spec.smartShutdownTimeout",
                "spec.stopDelay",
                "spec.primaryUpdateMethod",
            ]
        );
        assert_eq!(advice[1].value, "3600");
        assert_eq!(advice[2].value, "30 (default)");
        assert_eq!(advice[3].value, "5min (PostgreSQL default)");
        assert_eq!(advice[7].value, "restart");
    }

    #[test]
    fn the_failover_delay_fixture_names_its_delay() {
        let advice = advise(
            &fixture_spec("cnpg_cluster_06_failover_delay_waiting.json"),
            &Slo::default(),
        );
        let delay = advice
            .iter()
            .find(|a| a.field == "spec.failoverDelay")
            .expect("failoverDelay advice");
        assert_eq!(delay.value, "30");
        assert!(delay.cost.contains("grows by 30 s"), "{delay}");
        assert!(
            delay.cost.contains("more than the SLO's 10.000s"),
            "{delay}"
        );
        assert_eq!(delay.fix, "failoverDelay: 0 (the default)");
        assert_eq!(
            delay.to_string(),
            format!(
                "spec.failoverDelay = 30: {}. Fix: {}",
                delay.cost, delay.fix
            )
        );
    }

    #[test]
    fn rpo_rules() {
        let zero = Slo::default();
        let lossy = Slo::default().max_lost_writes(10);

        let async_spec = with(serde_json::json!({"postgresql": {"synchronous": null}}));
        assert_eq!(
            fields(&advise(&async_spec, &zero)),
            vec!["spec.postgresql.synchronous"]
        );
        assert!(advise(&async_spec, &lossy).is_empty(), "no RPO = 0 asked");

        let preferred = with(serde_json::json!(
            {"postgresql": {"synchronous": {"dataDurability": "preferred"}}}
        ));
        let advice = advise(&preferred, &zero);
        assert_eq!(
            fields(&advice),
            vec!["spec.postgresql.synchronous.dataDurability"]
        );
        assert_eq!(advice[0].value, "preferred");
        assert!(advise(&preferred, &lossy).is_empty());

        // Absent dataDurability is `required`.
        let implicit = with(serde_json::json!(
            {"postgresql": {"synchronous": {"dataDurability": null}}}
        ));
        assert!(advise(&implicit, &zero).is_empty());

        let legacy = with(serde_json::json!(
            {"postgresql": {"synchronous": null}, "maxSyncReplicas": 1}
        ));
        let advice = advise(&legacy, &zero);
        assert_eq!(fields(&advice), vec!["spec.minSyncReplicas"]);
        assert_eq!(advice[0].value, "0 (with maxSyncReplicas: 1)");
        let legacy_min = with(serde_json::json!(
            {"postgresql": {"synchronous": null}, "maxSyncReplicas": 1, "minSyncReplicas": 1}
        ));
        assert!(advise(&legacy_min, &zero).is_empty());

        // A zero-width window is RPO = 0 too.
        let window = Slo::default().max_lost_window(Duration::ZERO);
        assert_eq!(advise(&async_spec, &window).len(), 1);
    }

    #[test]
    fn instance_rules() {
        let single = with(serde_json::json!({"instances": 1}));
        assert_eq!(
            fields(&advise(&single, &Slo::default())),
            vec!["spec.instances"]
        );

        let all_sync = with(serde_json::json!(
            {"postgresql": {"synchronous": {"number": 2}}}
        ));
        let advice = advise(&all_sync, &Slo::default());
        assert_eq!(fields(&advice), vec!["spec.postgresql.synchronous.number"]);
        assert_eq!(advice[0].value, "2 (with 2 standbys)");
        // Preferred durability does not block writes (but breaks RPO = 0).
        let all_sync_preferred = with(serde_json::json!(
            {"postgresql": {"synchronous": {"number": 2, "dataDurability": "preferred"}}}
        ));
        assert!(advise(&all_sync_preferred, &Slo::default().max_lost_writes(5)).is_empty());
    }

    #[test]
    fn delay_rules() {
        let slo = Slo::default();
        let delay = with(serde_json::json!({"failoverDelay": 5}));
        let advice = advise(&delay, &slo);
        assert_eq!(fields(&advice), vec!["spec.failoverDelay"]);
        assert!(!advice[0].cost.contains("more than the SLO"), "5 s < 10 s");

        let switchover = with(serde_json::json!({"switchoverDelay": 11}));
        assert_eq!(
            fields(&advise(&switchover, &slo)),
            vec!["spec.switchoverDelay"]
        );
        let switchover_default = with(serde_json::json!({"switchoverDelay": null}));
        let advice = advise(&switchover_default, &slo);
        assert_eq!(advice[0].value, "3600 (default)");
        // A laxer SLO accepts the same value.
        let lax = Slo::max_rto(Duration::from_secs(20));
        assert!(advise(&switchover, &lax).is_empty());

        let smart = with(serde_json::json!({"smartShutdownTimeout": 6}));
        assert_eq!(
            fields(&advise(&smart, &slo)),
            vec!["spec.smartShutdownTimeout"]
        );
        let smart_default = with(serde_json::json!({"smartShutdownTimeout": null}));
        assert_eq!(advise(&smart_default, &slo)[0].value, "180 (default)");

        let stop = with(serde_json::json!({"stopDelay": 30}));
        assert_eq!(fields(&advise(&stop, &slo)), vec!["spec.stopDelay"]);
    }

    #[test]
    fn lease_rule() {
        let slo = Slo::default();
        // Absent, the operator's version decides: not advised on.
        assert!(advise(&spec(tuned()), &slo).is_empty());
        let long = with(serde_json::json!({"primaryLease": {"leaseDurationSeconds": 15}}));
        let advice = advise(&long, &slo);
        assert_eq!(fields(&advice), vec![field::LEASE_DURATION]);
        assert_eq!(advice[0].value, "15");
        assert_eq!(advice[0].phases(), [Phase::Detection, Phase::Election]);
        assert!(advice[0].cost.contains("up to 15 s"), "{}", advice[0]);
        let short = with(serde_json::json!({"primaryLease": {"leaseDurationSeconds": 5}}));
        assert!(advise(&short, &slo).is_empty());
        // Set without a duration: the default 15 s, advised on.
        let defaulted = with(serde_json::json!({"primaryLease": {"retryPeriodSeconds": 1}}));
        let advice = advise(&defaulted, &slo);
        assert_eq!(fields(&advice), vec![field::LEASE_DURATION]);
        assert_eq!(advice[0].value, "15 (default, CNPG 1.30+)");
    }

    #[test]
    fn probe_rules() {
        let slo = Slo::default();
        let liveness = with(serde_json::json!({"livenessProbeTimeout": 6}));
        assert_eq!(
            fields(&advise(&liveness, &slo)),
            vec!["spec.livenessProbeTimeout"]
        );
        let liveness_default = with(serde_json::json!({"livenessProbeTimeout": null}));
        assert_eq!(
            fields(&advise(&liveness_default, &slo)),
            vec!["spec.livenessProbeTimeout"]
        );

        // probes.liveness overrides livenessProbeTimeout: 3 × 10 s here.
        let slow = with(serde_json::json!({"probes": {"liveness": {"periodSeconds": 10}}}));
        let advice = advise(&slow, &slo);
        assert_eq!(fields(&advice), vec!["spec.probes.liveness"]);
        assert_eq!(advice[0].value, "{periodSeconds: 10}");
        assert!(advice[0].cost.contains("after 30 s"), "{}", advice[0]);
        let fast = with(serde_json::json!(
            {"probes": {"liveness": {"periodSeconds": 1, "failureThreshold": 3}}}
        ));
        assert!(advise(&fast, &slo).is_empty());
        // An isolation check alone sets no timing: livenessProbeTimeout rules.
        let isolation = with(serde_json::json!(
            {"probes": {"liveness": {"isolationCheck": {"enabled": true}}}}
        ));
        assert!(advise(&isolation, &slo).is_empty());

        let startup = with(serde_json::json!(
            {"probes": {"startup": {"periodSeconds": 10, "initialDelaySeconds": 5}}}
        ));
        let advice = advise(&startup, &slo);
        assert_eq!(fields(&advice), vec!["spec.probes.startup"]);
        assert!(advice[0].cost.contains("up to 15 s"), "{}", advice[0]);

        let readiness = with(serde_json::json!(
            {"probes": {"readiness": {"periodSeconds": 5, "failureThreshold": 3}}}
        ));
        assert_eq!(
            fields(&advise(&readiness, &slo)),
            vec!["spec.probes.readiness"]
        );
        let quick_readiness = with(serde_json::json!(
            {"probes": {"readiness": {"periodSeconds": 1, "failureThreshold": 3}}}
        ));
        assert!(advise(&quick_readiness, &slo).is_empty());
    }

    #[test]
    fn checkpoint_rule() {
        let slo = Slo::default();
        for (value, fires) in [
            ("5min", true),
            ("300", true),
            ("90s", true),
            ("1min", false),
            ("30s", false),
        ] {
            let s = with(serde_json::json!(
                {"postgresql": {"parameters": {"checkpoint_timeout": value}}}
            ));
            let advice = advise(&s, &slo);
            assert_eq!(!advice.is_empty(), fires, "{value}: {advice:?}");
            if fires {
                assert_eq!(
                    advice[0].field,
                    "spec.postgresql.parameters.checkpoint_timeout"
                );
                assert_eq!(advice[0].value, value);
            }
        }
        let default = with(serde_json::json!(
            {"postgresql": {"parameters": {"checkpoint_timeout": null}}}
        ));
        assert_eq!(advise(&default, &slo)[0].value, "5min (PostgreSQL default)");
        // Unparsable values are not guessed at.
        let odd = with(serde_json::json!(
            {"postgresql": {"parameters": {"checkpoint_timeout": "soon"}}}
        ));
        assert!(advise(&odd, &slo).is_empty());
    }

    #[test]
    fn wal_storage_and_update_method_rules() {
        let slo = Slo::default();
        let no_wal = with(serde_json::json!({"walStorage": null}));
        let advice = advise(&no_wal, &slo);
        assert_eq!(fields(&advice), vec!["spec.walStorage"]);
        assert_eq!(advice[0].value, "absent (WAL on the data volume)");

        let restart = with(serde_json::json!({"primaryUpdateMethod": "restart"}));
        assert_eq!(
            fields(&advise(&restart, &slo)),
            vec!["spec.primaryUpdateMethod"]
        );
        let default = with(serde_json::json!({"primaryUpdateMethod": null}));
        assert_eq!(advise(&default, &slo)[0].value, "restart (default)");
    }

    #[test]
    fn pg_durations() {
        assert_eq!(parse_pg_duration("5min"), Some(Duration::from_secs(300)));
        assert_eq!(parse_pg_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(
            parse_pg_duration("1500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_pg_duration(" 1h "), Some(Duration::from_secs(3600)));
        assert_eq!(parse_pg_duration("1 min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_pg_duration("5 fortnights"), None);
        assert_eq!(parse_pg_duration(""), None);
    }
}
