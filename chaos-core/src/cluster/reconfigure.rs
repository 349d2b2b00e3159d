//! Targets whose configuration an experiment may change between runs: the
//! [`Reconfigure`] capability of the [`Target`](super::Target) seam, which
//! [`ConfigExperiment`](crate::runs::ConfigExperiment) uses on any target that
//! offers it — the local cluster through Patroni's dynamic configuration, a
//! CloudNativePG cluster through its `Cluster` resource.

use std::fmt;
use std::str::FromStr;

use futures::future::BoxFuture;

use crate::{Error, Result};

/// One `name=value` an experiment changes. What a name means is the target's:
/// `ttl` or `checkpoint_timeout` on the local cluster,
/// `spec.primaryLease.leaseDurationSeconds` on CloudNativePG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The setting's name.
    pub name: String,
    /// Its value as given (`None`: unset, the target's default).
    pub value: Option<String>,
}

impl Setting {
    /// `name = value`, both trimmed.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Setting {
            name: name.into().trim().to_string(),
            value: Some(value.into().trim().to_string()),
        }
    }

    /// `name` unset: the target's default.
    pub fn unset(name: impl Into<String>) -> Self {
        Setting {
            name: name.into().trim().to_string(),
            value: None,
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
            expected: "NAME=VALUE: on the local cluster a Patroni setting (ttl, loop_wait, \
                       retry_timeout, synchronous_mode, …) or a PostgreSQL parameter \
                       (checkpoint_timeout=1min); on CloudNativePG a Cluster field \
                       (spec.primaryLease.leaseDurationSeconds=5)",
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

/// A target an experiment may re-configure between runs. Obtained through
/// [`Target::reconfigure`](super::Target::reconfigure); targets without it
/// cannot run configuration experiments.
pub trait Reconfigure: Send + Sync {
    /// Checks `settings` (names, types, combinations) before anything runs,
    /// and returns their current values: the baseline the experiment runs
    /// against and restores afterwards.
    ///
    /// # Errors
    /// [`Error::Config`] naming a setting the target does not know or would
    /// refuse; errors reading the configuration.
    fn baseline<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<Vec<Setting>>>;

    /// Applies `settings` and waits until they are in force everywhere and
    /// the cluster is healthy again.
    ///
    /// # Errors
    /// When the change is refused or does not take effect in time.
    fn apply<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<()>>;

    /// Puts back what a run that could not restore its baseline (killed,
    /// interrupted) left changed, and says what it restored. Nothing by
    /// default: a target whose changes die with the process needs nothing.
    ///
    /// # Errors
    /// When a leftover change was found but could not be restored.
    fn restore_leftovers(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_print() {
        let s: Setting = "ttl = 20".parse().expect("parses");
        assert_eq!(s, Setting::new("ttl", "20"));
        assert_eq!(s.to_string(), "ttl=20");
        let s: Setting = "spec.primaryLease.leaseDurationSeconds=5".parse().unwrap();
        assert_eq!(s.name, "spec.primaryLease.leaseDurationSeconds");
        assert_eq!(Setting::unset("ttl").to_string(), "ttl=(default)");
        for bad in ["ttl", "=3", "ttl=", "bad name=1", "x;drop=1"] {
            let e = bad.parse::<Setting>().expect_err(bad).to_string();
            assert!(e.contains("NAME=VALUE") && e.contains("--set"), "{e}");
        }
    }
}
