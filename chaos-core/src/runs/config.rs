//! Configuration experiments: baseline and variant runs, interleaved on one
//! cluster re-configured between them through its [`Reconfigure`](crate::cluster::Reconfigure) capability
//! (the local cluster: Patroni's dynamic configuration; CloudNativePG: its
//! `Cluster` resource), compared with a confidence interval.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::compare::{Comparison, Sample};
use super::{RunSet, RunSetError, Runs, base_seed, run_seed};
pub use crate::cluster::Setting;
use crate::cluster::Target;
pub use crate::cluster::local::PATRONI_SETTINGS;
use crate::experiment::{Experiment, FailoverCtx, TestResult};
use crate::report::SloRecord;
use crate::report::json::{file_stem, write_file};
use crate::{Error, Result};

/// A configuration experiment: `repeat` baseline runs and `repeat` variant
/// runs (the variant with the [`set`](Self::set) settings), interleaved in
/// pairs whose order is drawn from the seed, on one cluster re-configured
/// between runs through its [`Reconfigure`](crate::cluster::Reconfigure) capability (any
/// [`Target`] whose [`reconfigure`](Target::reconfigure) offers one), then
/// compared. The cluster's configuration is restored afterwards, whatever
/// happened; a target that keeps its changes beyond the process (CNPG)
/// also restores what a killed run left, at its next sweep.
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
    pub errors: Vec<RunSetError>,
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

    /// Runs the experiment on `target` with `body` as each run's faults.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a target that cannot be re-configured;
    /// [`Error::Config`] for a setting the target does not know or would
    /// reject, before anything runs; set-up errors of the first run. The
    /// configuration is restored in every case.
    pub async fn run<R, F>(&self, target: Arc<dyn Target>, body: F) -> Result<ExperimentResult>
    where
        R: TestResult + Send,
        F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        self.run_with_progress(target, body, |_, _, _| {}).await
    }

    /// [`run`](Self::run), calling `progress(i, n, arm)` before each run.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_with_progress<R, F>(
        &self,
        target: Arc<dyn Target>,
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
        let Some(config) = target.reconfigure() else {
            return Err(Error::Config {
                field: "target",
                expected: "a target whose configuration an experiment may change: local \
                           (Patroni settings, PostgreSQL parameters) or cnpg (Cluster fields)",
                found: target.kind().into(),
            });
        };
        // What a killed experiment left changed goes back first.
        for restored in config.restore_leftovers().await? {
            tracing::warn!("{restored}");
        }
        let baseline_settings = config.baseline(&self.settings).await?;
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
                    config.apply(settings).await?;
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
        let restored = config.apply(&baseline_settings).await;
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
                    Err(e) => errors.push(e.into()),
                }
                match crate::runs::picture::write_set_html(set, &dir) {
                    Ok(p) => paths.push(p),
                    Err(e) => errors.push(e.into()),
                }
                match set.write_junit_to(&dir, &self.experiment.suite_name()) {
                    Ok(p) => paths.push(p),
                    Err(e) => errors.push(e.into()),
                }
            }
            match write_comparison(&comparison, &dir, &name) {
                Ok(mut p) => paths.append(&mut p),
                Err(e) => errors.push(e.into()),
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
            serde_json::to_string_pretty(c)
                .map_err(|e| Error::json_write(format!("the comparison {name}"), e))?
                .as_bytes(),
        )?,
        write_file(
            dir,
            &format!("{stem}.html"),
            crate::runs::picture::comparison_html(c).as_bytes(),
        )?,
    ])
}
