//! Clusters that faults are injected into, behind one seam: the [`Target`] trait.
//!
//! The probe, the verification, the reports and the test harness know a cluster
//! only through [`Target`]: its kind, its read-write endpoint, its
//! [`Topology`] in neutral roles, whether it is healthy, how to repair it between
//! tests, how to sweep what a killed run left behind, and a stream of its own
//! events. Three targets ship: [`local::LocalCluster`], an embedded
//! Patroni cluster the library boots, [`external::ExternalCluster`], any
//! PostgreSQL cluster given by DSN, and (feature `cnpg`) `cnpg::CnpgCluster`,
//! a CloudNativePG `Cluster` on Kubernetes.
//!
//! What a target can do beyond that it says through the trait, never by
//! being asked what it is: it injects the built-in faults it can
//! ([`Target::inject_builtin`], [`Error::Unsupported`](crate::Error::Unsupported)
//! otherwise, generated from the fault [catalogue](crate::fault::CATALOGUE)),
//! is re-configured ([`Target::reconfigure`]), stops ([`Target::shutdown`]),
//! sweeps ([`Target::sweep`]) and plans without changing anything
//! ([`Target::dry_run_plan`]). [`TargetSpec`] builds any of them: the test
//! harness (from the environment) and the command line (from its flags) both
//! go through it. The code that does each target's faults lives in the
//! target's own module; `chaos-core`'s tests check that nothing outside those
//! modules downcasts a `dyn Target`.

#[cfg(feature = "cnpg")]
pub mod cnpg;
mod dispatch;
pub mod external;
pub mod local;
pub(crate) mod pglog;
pub mod reconfigure;
mod spec;
mod topology;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use reconfigure::{Reconfigure, Setting};
pub use spec::TargetSpec;
pub use topology::{Member, Role, Topology};

use crate::Result;
use crate::fault::{AnyGuard, Builtin};
use crate::timeline::Event;

/// A PostgreSQL cluster the library can measure. Implement the required
/// methods; the others have defaults that work for any cluster.
///
/// Methods return boxed futures so that targets can be chosen at run time
/// (`Arc<dyn Target>`).
pub trait Target: Any + Send + Sync + fmt::Debug {
    /// A short name of the kind of target, e.g. `local` or `external`.
    fn kind(&self) -> &'static str;

    /// What to call this cluster in messages, e.g. `CloudNativePG cluster
    /// ns/name (context kind-chaos)` (default: `<kind> cluster`). Never
    /// carries a password.
    fn describe(&self) -> String {
        format!("{} cluster", self.kind())
    }

    /// The read-write endpoint clients use. It may carry a password: pass it
    /// through [`crate::dsn::redact`] before printing it.
    fn rw_dsn(&self) -> String;

    /// Number of database nodes, as far as the target knows.
    fn node_count(&self) -> usize;

    /// The cluster's current roles.
    ///
    /// # Errors
    /// When the cluster cannot be inspected at all.
    fn topology(&self) -> BoxFuture<'_, Result<Topology>>;

    /// Waits until the cluster is healthy — a primary that accepts writes and,
    /// where the cluster replicates synchronously, a synchronous standby that
    /// streams — and returns the topology then.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`] saying what was missing.
    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>>;

    /// Brings the cluster back to full health after an earlier experiment
    /// (default: [`wait_healthy`](Self::wait_healthy)).
    ///
    /// # Errors
    /// When the cluster cannot be made healthy within `timeout`.
    fn repair(&self, timeout: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.wait_healthy(timeout).await.map(|_| ()) })
    }

    /// Removes what an earlier, killed run left behind; returns what was swept
    /// (default: nothing to sweep).
    ///
    /// # Errors
    /// When leftovers were found but could not be removed.
    fn sweep(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Where the target's own configuration contradicts `slo`, in words, for
    /// the report's warnings (the CNPG target reads its `Cluster` spec: see
    /// `cluster::cnpg::advisor`). Empty by default.
    fn advise<'a>(&'a self, slo: &'a crate::slo::Slo) -> BoxFuture<'a, Vec<String>> {
        let _ = slo;
        Box::pin(async { Vec::new() })
    }

    /// What the target's configuration cost a finished run, from the
    /// report's measured phases: one [`Finding`](crate::report::Finding) per
    /// setting, measured ones with their cost, checklist ones (as
    /// [`advise`](Self::advise) gives them) not measured. The report ranks
    /// them, lists them in place of `advise`'s warnings and names the
    /// costliest in its summary. Empty by default: `advise`'s warnings stay.
    fn advise_run<'a>(
        &'a self,
        slo: &'a crate::slo::Slo,
        report: &'a crate::report::Report,
    ) -> BoxFuture<'a, Vec<crate::report::Finding>> {
        let _ = (slo, report);
        Box::pin(async { Vec::new() })
    }

    /// What runs the cluster, for the report's target info: component →
    /// version or setting (the local cluster: `patroni`, `postgresql`,
    /// `synchronous_mode`, `ttl`). Empty by default.
    fn software(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Injects built-in fault `fault` the target's own way, returning once it
    /// is in effect; `arg` is its value as written (`--fault NAME=VALUE`),
    /// which an external target's command sees as `CHAOS_FAULT_ARG`. This is
    /// what `Fault<dyn Target>` of every built-in fault and of
    /// [`FaultSpec`](crate::fault::FaultSpec) calls. The default does none:
    /// [`FaultKind::unsupported`](crate::fault::FaultKind::unsupported).
    ///
    /// # Errors
    /// [`crate::Error::Unsupported`] naming the targets that do the fault,
    /// or the fault's own error.
    fn inject_builtin(
        &self,
        fault: Builtin,
        arg: Option<String>,
    ) -> BoxFuture<'_, Result<AnyGuard>> {
        let _ = arg;
        let err = fault.kind().unsupported(self.kind());
        Box::pin(async move { Err(err) })
    }

    /// Stops what the target started and runs (the local cluster's processes
    /// and directory), for a target that is being replaced or whose run is
    /// over. Blocking; nothing by default.
    fn shutdown(&self) {}

    /// The changes planned instead of made, when the target only plans (the
    /// CNPG target's dry run: each printed as it is planned); `None` (the
    /// default) when it changes things for real.
    fn dry_run_plan(&self) -> Option<Vec<String>> {
        None
    }

    /// The target's configuration, if an experiment may change it between
    /// runs ([`ConfigExperiment`](crate::runs::ConfigExperiment)); `None`
    /// (the default) when it may not.
    fn reconfigure(&self) -> Option<&dyn Reconfigure> {
        None
    }

    /// A single-host DSN that always reaches the current primary — a proxy or
    /// a service in front of the cluster — for drivers without multi-host
    /// DSNs (sqlx). `None` (the default) when the target has none.
    fn router_dsn(&self) -> Option<String> {
        None
    }

    /// The current primary's own single-host DSN, if the target knows one.
    ///
    /// # Errors
    /// When the topology cannot be read.
    fn primary_dsn(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// The target's own events (a new primary, a member going down or coming
    /// back), as they are observed. The default polls [`topology`](Self::topology)
    /// every 50 ms.
    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        topology::poll_events(self, Duration::from_millis(50))
    }
}

impl dyn Target {
    /// The concrete target, if it is a `T`: the escape hatch for a fault of
    /// your own that only some targets can do (see `examples/custom_fault.rs`).
    /// The library itself never uses it outside a target's own module; what
    /// a target can do, it says through [`Target`].
    pub fn downcast_ref<T: Target>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref::<T>()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Where a target may be downcast: a target's own module, the escape
    /// hatch's definition (this file) and `FailoverCtx::target_as` (the
    /// escape hatch for users' own faults).
    const ALLOWED: [&str; 5] = [
        "cluster/local/",
        "cluster/external/",
        "cluster/cnpg/",
        "cluster/mod.rs",
        "experiment/ctx.rs",
    ];

    /// Whether a line of code downcasts a target: a `downcast` on something
    /// called a target or to a `…Cluster`. Downcasts of errors and panic
    /// payloads are not the seam's business.
    fn downcasts_a_target(line: &str) -> bool {
        let code = line.trim_start();
        !code.starts_with("//")
            && code.contains("downcast")
            && (code.contains("Cluster") || code.to_lowercase().contains("target"))
    }

    #[test]
    fn the_lines_that_once_downcast_targets_are_recognised() {
        for line in [
            "if let Some(cnpg) = target.downcast_ref::<crate::cluster::cnpg::CnpgCluster>() {",
            "&& let Some(local) = old.downcast_ref::<LocalCluster>()",
            "if let Some(cnpg) = target.downcast_ref::<CnpgCluster>()",
            "if let Some(external) = target.downcast_ref::<crate::cluster::external::ExternalCluster>()",
        ] {
            assert!(downcasts_a_target(line), "{line}");
        }
        for line in [
            ".and_then(|s| s.downcast_ref::<std::io::Error>())",
            "(_, BodyOutcome::Failed(e), _) => match e.downcast::<Error>() {",
            ".downcast_ref::<&str>()",
            "// a target may be downcast in its own module",
        ] {
            assert!(!downcasts_a_target(line), "{line}");
        }
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Code above the seam never asks which target it has: what a target can
    /// do, it says through `Target`.
    #[test]
    fn nothing_outside_a_targets_module_downcasts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 50, "found the sources: {}", files.len());
        let mut offenders = Vec::new();
        for file in files {
            let rel = file
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            if ALLOWED.iter().any(|a| rel.starts_with(a)) || rel.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable");
            // The library's code, not its tests.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if downcasts_a_target(line) {
                    offenders.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "downcasts outside a target's module (say it through the Target trait instead):\n{}",
            offenders.join("\n")
        );
    }

    /// The escape hatch in `experiment/ctx.rs` is `target_as` alone.
    #[test]
    fn the_context_downcasts_only_in_target_as() {
        let text = include_str!("../experiment/ctx.rs");
        let uses: Vec<&str> = text.lines().filter(|l| l.contains("downcast")).collect();
        assert_eq!(uses.len(), 1, "{uses:#?}");
        let at = text.find("downcast").expect("one use");
        let before = &text[..at];
        let last_fn = before.rfind("fn ").expect("inside a function");
        assert!(
            before[last_fn..].starts_with("fn target_as"),
            "{}",
            &before[last_fn..]
        );
    }
}
