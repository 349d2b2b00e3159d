//! Configuration experiments on the embedded cluster: baseline and variant
//! runs, interleaved on one cluster re-configured between them through
//! Patroni's dynamic configuration, compared with a confidence interval.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::compare::{Comparison, Sample};
use super::{RunSet, Runs, base_seed, run_seed};
use crate::cluster::Target;
use crate::cluster::local::LocalCluster;
use crate::experiment::{Experiment, FailoverCtx, TestResult};
use crate::report::SloRecord;
use crate::report::json::{file_stem, write_file};
use crate::{Error, Result};

/// Patroni's dynamic settings an experiment may change (everything else is a
/// PostgreSQL parameter).
pub const PATRONI_SETTINGS: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "primary_start_timeout",
    "primary_stop_timeout",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
    "check_timeline",
];

/// Where a setting lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// Patroni's dynamic configuration (`ttl`, `loop_wait`, …).
    Patroni,
    /// A PostgreSQL parameter (`checkpoint_timeout`, `wal_sender_timeout`, …),
    /// set through Patroni's `postgresql.parameters`.
    Postgres,
}

/// One `name=value` an experiment changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The setting's name.
    pub name: String,
    /// Its value as given (`None`: unset, the default).
    pub value: Option<String>,
    /// Where it lives.
    pub kind: SettingKind,
}

impl Setting {
    /// `name = value`; the kind follows from the name ([`PATRONI_SETTINGS`],
    /// else a PostgreSQL parameter).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into().trim().to_string();
        let kind = if PATRONI_SETTINGS.contains(&name.as_str()) {
            SettingKind::Patroni
        } else {
            SettingKind::Postgres
        };
        Setting {
            name,
            value: Some(value.into().trim().to_string()),
            kind,
        }
    }

    /// The value as Patroni's JSON wants it: numbers and booleans typed.
    fn json_value(&self) -> Value {
        match &self.value {
            None => Value::Null,
            Some(v) if self.kind == SettingKind::Patroni => v
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| v.parse::<bool>().map(Value::from))
                .unwrap_or_else(|_| Value::from(v.clone())),
            Some(v) => Value::from(v.clone()),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.name),
            None => write!(f, "{}=(default)", self.name),
        }
    }
}

impl FromStr for Setting {
    type Err = Error;

    /// Parses `name=value` (as `chaos experiment --set` takes it).
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::Config {
            field: "--set",
            expected: "NAME=VALUE with a Patroni setting (ttl, loop_wait, retry_timeout, \
                       maximum_lag_on_failover, synchronous_mode, …) or a PostgreSQL parameter \
                       (checkpoint_timeout=1min), e.g. --set ttl=20",
            found: text.to_string(),
        };
        let (name, value) = text.split_once('=').ok_or_else(bad)?;
        let valid_name = !name.trim().is_empty()
            && name
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_name || value.trim().is_empty() {
            return Err(bad());
        }
        Ok(Setting::new(name, value))
    }
}

/// A configuration experiment: `repeat` baseline runs and `repeat` variant
/// runs (the variant with the [`set`](Self::set) settings), interleaved in
/// pairs whose order is drawn from the seed, on one local cluster
/// re-configured through Patroni's REST API between runs, then compared.
/// The cluster's configuration is restored afterwards, whatever happened.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use chaos_core::prelude::*;
/// use chaos_core::runs::ConfigExperiment;
///
/// # async fn demo() -> chaos_core::Result<()> {
/// let cluster = Arc::new(LocalCluster::builder().start().await?);
/// let result = ConfigExperiment::new(Experiment::new("ttl_matters").slo(Slo::max_rto(Duration::from_secs(60))))
///     .set("ttl", "20")
///     .repeat(5)
///     .run(cluster, |ctx| Box::pin(async move { ctx.inject(DeletePrimary::kill()).await.map(|_| ()) }))
///     .await?;
/// println!("{}", result.comparison);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigExperiment {
    experiment: Experiment,
    settings: Vec<Setting>,
    repeat: usize,
    seed: Option<u64>,
}

/// What a configuration experiment found.
#[derive(Debug)]
pub struct ExperimentResult {
    /// The baseline's runs (the cluster as it was).
    pub baseline: RunSet,
    /// The variant's runs (with the settings).
    pub variant: RunSet,
    /// Variant against baseline.
    pub comparison: Comparison,
    /// Problems outside the runs' reports.
    pub errors: Vec<String>,
    /// Files written.
    pub report_paths: Vec<std::path::PathBuf>,
}

impl ConfigExperiment {
    /// An experiment running `experiment` (its scenario, SLO, probe) in
    /// both arms; 5 runs per arm unless [`repeat`](Self::repeat) says otherwise.
    pub fn new(experiment: Experiment) -> Self {
        ConfigExperiment {
            experiment,
            settings: Vec::new(),
            repeat: 5,
            seed: None,
        }
    }

    /// A setting of the variant (several allowed).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push(Setting::new(name, value));
        self
    }

    /// A parsed setting of the variant.
    pub fn setting(mut self, setting: Setting) -> Self {
        self.settings.push(setting);
        self
    }

    /// Runs per arm (at least 1; 2 or more for a confidence interval).
    pub fn repeat(mut self, n: usize) -> Self {
        self.repeat = n.max(1);
        self
    }

    /// The seed of the run order, the runs' seeds and the bootstrap
    /// (default: `CHAOS_SEED`, else fresh).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs the experiment on `cluster` with `body` as each run's faults.
    /// `progress(i, n, arm)` is called before each of the `n` runs.
    ///
    /// # Errors
    /// [`Error::Config`] for a setting the cluster does not know or a Patroni
    /// timing combination it would reject, before anything runs; set-up
    /// errors of the first run. The configuration is restored in every case.
    pub async fn run<R, F>(&self, cluster: Arc<LocalCluster>, body: F) -> Result<ExperimentResult>
    where
        R: TestResult + Send,
        F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        self.run_with_progress(cluster, body, |_, _, _| {}).await
    }

    /// [`run`](Self::run), calling `progress(i, n, arm)` before each run.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_with_progress<R, F>(
        &self,
        cluster: Arc<LocalCluster>,
        body: F,
        progress: impl Fn(usize, usize, &str),
    ) -> Result<ExperimentResult>
    where
        R: TestResult + Send,
        F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        if self.settings.is_empty() {
            return Err(Error::Config {
                field: "--set",
                expected: "at least one NAME=VALUE setting for the variant",
                found: String::new(),
            });
        }
        let current = dynamic_config(&cluster).await?;
        self.check(&cluster, &current).await?;
        let baseline_settings: Vec<Setting> = self
            .settings
            .iter()
            .map(|s| Setting {
                value: lookup(&current, s).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                ..s.clone()
            })
            .collect();
        let seed = self.seed.unwrap_or_else(base_seed);
        let name = self.experiment.name().to_string();
        let arm = |suffix: &str| {
            Runs::new(
                self.experiment
                    .clone()
                    .renamed(format!("{name}-{suffix}"))
                    .print_summary(false),
            )
            .repeat(self.repeat)
            .seed(seed)
        };
        let (base_runs, variant_runs) = (arm("baseline"), arm("variant"));
        let target: Arc<dyn Target> = cluster.clone();
        let mut baseline = Vec::new();
        let mut variant = Vec::new();
        let mut errors = Vec::new();
        let mut paths = Vec::new();
        let total = self.repeat * 2;
        let outcome: Result<()> = async {
            for i in 0..self.repeat {
                // The order within each pair, from the seed: drift over time
                // (a warming cache, a busier machine) falls on both arms.
                let variant_first = run_seed(seed ^ 0x5eed, i) & 1 == 1;
                for step in 0..2 {
                    let is_variant = (step == 0) == variant_first;
                    let (runs, settings, out, label) = if is_variant {
                        (&variant_runs, &self.settings, &mut variant, "variant")
                    } else {
                        (&base_runs, &baseline_settings, &mut baseline, "baseline")
                    };
                    apply(&cluster, settings).await?;
                    progress(i * 2 + step + 1, total, label);
                    let o = runs.run_only(target.clone(), &body, i, 1).await?;
                    errors.extend(o.errors);
                    paths.extend(o.report_paths);
                    out.extend(o.set.runs);
                }
            }
            Ok(())
        }
        .await;
        // Always back to the baseline, whatever happened.
        let restored = apply(&cluster, &baseline_settings).await;
        outcome?;
        restored?;

        let slo = SloRecord::from(*self.experiment.slo_ref());
        let mut base_set = RunSet::new(format!("{name}-baseline"), slo.clone(), seed, baseline);
        base_set.label = Some("baseline".into());
        base_set.settings = baseline_settings.iter().map(ToString::to_string).collect();
        let mut variant_set = RunSet::new(format!("{name}-variant"), slo, seed, variant);
        variant_set.label = Some("variant".into());
        variant_set.settings = self.settings.iter().map(ToString::to_string).collect();
        let comparison = Comparison::new(
            Sample::of_set("baseline", &base_set),
            Sample::of_set("variant", &variant_set),
            seed,
        );
        if self.experiment.writes_reports() {
            let dir = self.experiment.report_dir_or_default();
            for set in [&base_set, &variant_set] {
                match set.write_json_to(&dir) {
                    Ok(p) => paths.push(p),
                    Err(e) => errors.push(e.to_string()),
                }
                match crate::report::picture::write_set_html(set, &dir) {
                    Ok(p) => paths.push(p),
                    Err(e) => errors.push(e.to_string()),
                }
                match set.write_junit_to(&dir, &self.experiment.suite_name()) {
                    Ok(p) => paths.push(p),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            match write_comparison(&comparison, &dir, &name) {
                Ok(mut p) => paths.append(&mut p),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Ok(ExperimentResult {
            baseline: base_set,
            variant: variant_set,
            comparison,
            errors,
            report_paths: paths,
        })
    }

    /// Refuses settings the cluster does not know, and Patroni timings it
    /// would not accept (`loop_wait + 2 × retry_timeout ≤ ttl`).
    async fn check(&self, cluster: &LocalCluster, current: &Value) -> Result<()> {
        let client = crate::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5)).await?;
        for s in self
            .settings
            .iter()
            .filter(|s| s.kind == SettingKind::Postgres)
        {
            let known = client
                .query_opt("SELECT 1 FROM pg_settings WHERE name = $1", &[&s.name])
                .await
                .map_err(|e| Error::pg("reading pg_settings", e))?;
            if known.is_none() {
                return Err(Error::Config {
                    field: "--set",
                    expected: "a Patroni setting (ttl, loop_wait, retry_timeout, \
                               maximum_lag_on_failover, synchronous_mode, …) or a PostgreSQL \
                               parameter this server knows (SELECT name FROM pg_settings)",
                    found: s.name.clone(),
                });
            }
        }
        let timing = |key: &str| -> Option<i64> {
            match self.settings.iter().find(|s| s.name == key) {
                Some(s) => s.json_value().as_i64(),
                None => current.get(key).and_then(Value::as_i64),
            }
        };
        for key in ["ttl", "loop_wait", "retry_timeout"] {
            if let Some(s) = self.settings.iter().find(|s| s.name == key)
                && s.json_value().as_i64().is_none_or(|v| v < 1)
            {
                return Err(Error::Config {
                    field: "--set",
                    expected: "a whole number of seconds ≥ 1 for ttl, loop_wait and retry_timeout",
                    found: s.to_string(),
                });
            }
        }
        if let (Some(ttl), Some(lw), Some(rt)) =
            (timing("ttl"), timing("loop_wait"), timing("retry_timeout"))
            && lw + 2 * rt > ttl
        {
            return Err(Error::Config {
                field: "--set",
                expected: "Patroni timings with loop_wait + 2 × retry_timeout ≤ ttl (Patroni \
                           ignores others)",
                found: format!("ttl={ttl} loop_wait={lw} retry_timeout={rt}"),
            });
        }
        Ok(())
    }
}

/// Writes the comparison's JSON and HTML as `<name>.comparison.*`.
fn write_comparison(
    c: &Comparison,
    dir: &std::path::Path,
    name: &str,
) -> Result<Vec<std::path::PathBuf>> {
    let stem = format!("{}.comparison", file_stem(name));
    Ok(vec![
        write_file(
            dir,
            &format!("{stem}.json"),
            serde_json::to_string_pretty(c)?.as_bytes(),
        )?,
        write_file(
            dir,
            &format!("{stem}.html"),
            crate::report::picture::comparison_html(c).as_bytes(),
        )?,
    ])
}

/// The setting's current value in Patroni's dynamic configuration.
fn lookup<'a>(config: &'a Value, s: &Setting) -> Option<&'a Value> {
    match s.kind {
        SettingKind::Patroni => config.get(&s.name),
        SettingKind::Postgres => config
            .get("postgresql")
            .and_then(|p| p.get("parameters"))
            .and_then(|p| p.get(&s.name)),
    }
    .filter(|v| !v.is_null())
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| Error::Patroni {
            url: "(client)".into(),
            source: e,
        })
}

/// Patroni's dynamic configuration (`GET /config` on the first node that answers).
async fn dynamic_config(cluster: &LocalCluster) -> Result<Value> {
    let http = http()?;
    let mut last = None;
    for node in cluster.nodes() {
        let url = format!("{}/config", node.api_url());
        match http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(r) => {
                return r
                    .json()
                    .await
                    .map_err(|e| Error::Patroni { url, source: e });
            }
            Err(e) => last = Some(Error::Patroni { url, source: e }),
        }
    }
    Err(last.unwrap_or_else(|| Error::ClusterState("the cluster has no nodes".into())))
}

/// Applies `settings` through `PATCH /config` (a `None` value removes the
/// key), then waits until every node runs with them: PostgreSQL parameters
/// reloaded (nodes that need a restart for one are restarted through
/// Patroni), Patroni timings picked up after two HA loops.
async fn apply(cluster: &LocalCluster, settings: &[Setting]) -> Result<()> {
    let mut patch = Map::new();
    let mut params = Map::new();
    for s in settings {
        match s.kind {
            SettingKind::Patroni => {
                patch.insert(s.name.clone(), s.json_value());
            }
            SettingKind::Postgres => {
                params.insert(s.name.clone(), s.json_value());
            }
        }
    }
    if !params.is_empty() {
        patch.insert("postgresql".into(), json!({ "parameters": params }));
    }
    let before = node_settings(cluster, settings).await;
    let http = http()?;
    let primary = cluster.primary().await?;
    let node = cluster
        .node(&primary)
        .ok_or_else(|| Error::ClusterState(format!("primary {primary} is not a node")))?;
    let url = format!("{}/config", node.api_url());
    let answer = http
        .patch(&url)
        .json(&Value::Object(patch))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| Error::Patroni {
            url: url.clone(),
            source: e,
        })?;
    drop(answer);
    let loop_wait = Duration::from_secs(cluster.timings().loop_wait.into());
    tokio::time::sleep(loop_wait * 2 + Duration::from_millis(500)).await;
    if settings.iter().any(|s| s.kind == SettingKind::Postgres) {
        // Reloaded everywhere, or waiting for a restart.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = node_settings(cluster, settings).await;
            let pending: Vec<String> = now
                .iter()
                .filter(|(_, _, pending)| *pending)
                .map(|(n, _, _)| n.clone())
                .collect();
            let settled = now.iter().all(|(n, v, pending)| {
                *pending
                    || before
                        .iter()
                        .find(|(b, _, _)| b == n)
                        .is_none_or(|(_, bv, _)| bv != v)
            });
            if settled || Instant::now() >= deadline {
                for name in pending {
                    restart(cluster, &http, &name).await?;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    cluster.wait_healthy(Duration::from_secs(120)).await?;
    Ok(())
}

/// Per node: the PostgreSQL settings' current values (joined) and whether any
/// waits for a restart. Nodes that cannot be asked are left out.
async fn node_settings(
    cluster: &LocalCluster,
    settings: &[Setting],
) -> Vec<(String, String, bool)> {
    let names: Vec<String> = settings
        .iter()
        .filter(|s| s.kind == SettingKind::Postgres)
        .map(|s| s.name.clone())
        .collect();
    let mut out = Vec::new();
    if names.is_empty() {
        return out;
    }
    for node in cluster.nodes() {
        let Ok(client) = crate::pg::connect(&node.dsn(), Duration::from_secs(2)).await else {
            continue;
        };
        let Ok(rows) = client
            .query(
                "SELECT name || '=' || setting, pending_restart FROM pg_settings \
                  WHERE name = ANY($1) ORDER BY name",
                &[&names],
            )
            .await
        else {
            continue;
        };
        let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let pending = rows.iter().any(|r| r.get::<_, bool>(1));
        out.push((node.name.clone(), values.join(","), pending));
    }
    out
}

/// Restarts `name`'s PostgreSQL through Patroni (`POST /restart`).
async fn restart(cluster: &LocalCluster, http: &reqwest::Client, name: &str) -> Result<()> {
    let node = cluster
        .node(name)
        .ok_or_else(|| Error::ClusterState(format!("{name} is not a node")))?;
    let url = format!("{}/restart", node.api_url());
    tracing::info!(
        node = name,
        "restarting PostgreSQL for a setting that needs it"
    );
    http.post(&url)
        .json(&json!({}))
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| Error::Patroni { url, source: e })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_know_their_kind() {
        let s: Setting = "ttl=20".parse().expect("parses");
        assert_eq!(s.kind, SettingKind::Patroni);
        assert_eq!(s.json_value(), json!(20));
        let s: Setting = "checkpoint_timeout = 1min".parse().expect("parses");
        assert_eq!(
            (s.name.as_str(), s.kind),
            ("checkpoint_timeout", SettingKind::Postgres)
        );
        assert_eq!(s.json_value(), json!("1min"));
        let s: Setting = "synchronous_mode=true".parse().expect("parses");
        assert_eq!(s.json_value(), json!(true));
        assert_eq!(s.to_string(), "synchronous_mode=true");
        for bad in ["ttl", "=3", "ttl=", "bad name=1", "x;drop=1"] {
            let e = bad.parse::<Setting>().expect_err(bad).to_string();
            assert!(e.contains("NAME=VALUE") && e.contains("--set"), "{e}");
        }
    }

    #[test]
    fn current_values_are_found_where_patroni_keeps_them() {
        let config = json!({
            "ttl": 5,
            "postgresql": { "parameters": { "wal_log_hints": "on", "gone": null } }
        });
        assert_eq!(lookup(&config, &Setting::new("ttl", "9")), Some(&json!(5)));
        assert_eq!(
            lookup(&config, &Setting::new("wal_log_hints", "off")),
            Some(&json!("on"))
        );
        assert_eq!(lookup(&config, &Setting::new("gone", "1")), None);
        assert_eq!(lookup(&config, &Setting::new("loop_wait", "1")), None);
    }
}
