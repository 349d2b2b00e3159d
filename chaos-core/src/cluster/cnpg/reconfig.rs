//! The CNPG target's [`Reconfigure`]: configuration experiments on the
//! `Cluster` resource (`--set spec.primaryLease.leaseDurationSeconds=5`).
//!
//! - **Checked before anything runs**: every setting is a `spec.…` path,
//!   walked through the `Cluster` CRD's OpenAPI schema as the API server has
//!   it installed (field names, types, enums; a misspelt field gets the close
//!   names), and its value is typed by that schema.
//! - **Guarded changes**: each change is a merge patch carrying the
//!   `resourceVersion` it was computed from (a conflict is retried), and the
//!   first one records the original values in a `chaos.dev/restore-<run>`
//!   annotation on the same object, in the same request.
//! - **In force before measuring**: after a patch, the experiment waits until
//!   CNPG has rolled it out — the `Ready` condition observed the patch's
//!   generation, every instance ready — and the cluster is healthy.
//! - **Restored whatever happens**: the experiment puts the baseline back at
//!   its end (pass, fail, panic); `chaos experiment` does so on Ctrl-C; and a
//!   killed run's record is found by the next sweep (its run `Lease` has
//!   expired), which restores the values and removes the record.
//! - A dry run prints each patch and sends none.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::{Map, Value, json};

use super::CnpgCluster;
use super::safety::{self, Mutation};
use super::target::cluster_resource;
use crate::cluster::reconfigure::{Reconfigure, Setting};
use crate::error::CnpgError;
use crate::{Error, Result};

/// The annotation prefix (on the `Cluster`) recording the values a run
/// changed: `chaos.dev/restore-<run id>: {"spec.switchoverDelay": 3600, …}`
/// (`null`: the field was absent).
pub(crate) const RESTORE_PREFIX: &str = "chaos.dev/restore-";

/// The installed `Cluster` CRD's name.
const CRD_NAME: &str = "clusters.postgresql.cnpg.io";

/// How often a guarded patch is retried after a `resourceVersion` conflict.
const CONFLICT_RETRIES: u32 = 5;

/// How long a change may take to roll out (CNPG restarts instances one by
/// one for some parameters).
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// `spec.a.b` → `["spec", "a", "b"]`.
fn path_of(s: &Setting) -> Result<Vec<String>> {
    let parts: Vec<String> = s.name.split('.').map(str::to_string).collect();
    if parts.len() < 2 || parts[0] != "spec" || parts.iter().any(String::is_empty) {
        return Err(Error::Config {
            field: "--set",
            expected: "a field of the CNPG Cluster's spec as a dotted path, e.g. \
                       spec.primaryLease.leaseDurationSeconds=5, spec.switchoverDelay=10 or \
                       spec.postgresql.parameters.checkpoint_timeout=1min",
            found: s.to_string(),
        });
    }
    Ok(parts)
}

/// The schema of the field at `path` below the object schema `root`, or why
/// there is none (with the names there are, closest first).
pub(crate) fn schema_at<'a>(
    root: &'a Value,
    path: &[String],
) -> std::result::Result<&'a Value, String> {
    let mut at = root;
    for (i, part) in path.iter().enumerate() {
        let here = path[..i].join(".");
        if let Some(p) = at.get("properties").and_then(Value::as_object) {
            match p.get(part) {
                Some(next) => at = next,
                None => {
                    let mut names: Vec<&String> = p.keys().collect();
                    names.sort_by_key(|n| strsim::levenshtein(n, part));
                    let close: Vec<&str> = names.iter().take(3).map(|n| n.as_str()).collect();
                    return Err(format!(
                        "{here} has no field `{part}` (closest: {})",
                        close.join(", ")
                    ));
                }
            }
        } else if let Some(a) = at.get("additionalProperties").filter(|a| a.is_object()) {
            at = a;
        } else {
            return Err(format!("{here} has no fields (it is a {})", type_of(at)));
        }
    }
    Ok(at)
}

fn type_of(schema: &Value) -> &str {
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("value")
}

/// `raw` as the JSON the field's `schema` wants (without a schema: an
/// integer, a boolean, else a string).
pub(crate) fn typed(schema: Option<&Value>, raw: &str) -> std::result::Result<Value, String> {
    let Some(schema) = schema else {
        return Ok(raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<bool>().map(Value::from))
            .unwrap_or_else(|_| Value::from(raw)));
    };
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let value = match type_of(schema) {
        _ if int_or_string => raw
            .parse::<i64>()
            .map_or_else(|_| Value::from(raw), Value::from),
        "integer" => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("a whole number, not {raw:?}"))?,
        "number" => raw
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("a number, not {raw:?}"))?,
        "boolean" => raw
            .parse::<bool>()
            .map(Value::from)
            .map_err(|_| format!("true or false, not {raw:?}"))?,
        "string" => Value::from(raw),
        other => return Err(format!("a scalar field, not a whole {other}")),
    };
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(&value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!("one of {}, not {raw:?}", names.join(", ")));
    }
    if let (Some(min), Some(v)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && v < min
    {
        return Err(format!("at least {min}, not {raw}"));
    }
    Ok(value)
}

/// The value at `path` in `obj`, if any.
fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(obj, |at, p| at.get(p))
        .filter(|v| !v.is_null())
}

/// Sets `path` in the nested object `patch` to `value`.
fn set_path(patch: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path
        .split_last()
        .unwrap_or_else(|| unreachable!("paths are checked"));
    let mut at = patch;
    for p in parents {
        at = at
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .unwrap_or_else(|| unreachable!("only objects are inserted"));
    }
    at.insert(last.clone(), value);
}

/// The merge patch that sets each `(path, value)` (a `null` value removes
/// the field), guarded by `resource_version`, with the run's restore record
/// (`None`: removed).
pub(crate) fn patch_body(
    resource_version: &str,
    values: &[(Vec<String>, Value)],
    record_key: &str,
    record: Option<&Map<String, Value>>,
) -> Value {
    let mut body = Map::new();
    for (path, value) in values {
        set_path(&mut body, path, value.clone());
    }
    let record = record.map_or(Value::Null, |r| {
        Value::String(Value::Object(r.clone()).to_string())
    });
    body.insert(
        "metadata".into(),
        json!({ "resourceVersion": resource_version, "annotations": { record_key: record } }),
    );
    Value::Object(body)
}

/// The shortest prefix of `path` (below `spec`) that `obj` lacks, else
/// `path` itself.
fn absent_root(obj: &Value, path: &[String]) -> Vec<String> {
    (2..=path.len())
        .map(|n| path[..n].to_vec())
        .find(|p| get_path(obj, p).is_none())
        .unwrap_or_else(|| path.to_vec())
}

/// Whether dotted path `prefix` is `path` or one of its ancestors.
fn is_prefix(prefix: &str, path: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}."))
}

/// `values` with each removal (`null`) of a field whose recorded original
/// is an absent ancestor turned into that ancestor's removal, unless
/// another value still sets something below it.
fn effective(
    values: &[(Vec<String>, Value)],
    record: &Map<String, Value>,
) -> Vec<(Vec<String>, Value)> {
    let mut out: Vec<(Vec<String>, Value)> = Vec::new();
    for (path, value) in values {
        let dotted = path.join(".");
        let root = record
            .iter()
            .find(|(k, v)| v.is_null() && *k != &dotted && is_prefix(k, &dotted))
            .map(|(k, _)| k.clone());
        let entry = match root {
            Some(root)
                if value.is_null()
                    && !values
                        .iter()
                        .any(|(p, v)| !v.is_null() && is_prefix(&root, &p.join("."))) =>
            {
                (root.split('.').map(str::to_string).collect(), Value::Null)
            }
            _ => (path.clone(), value.clone()),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// A setting's value in words, as `Setting` keeps it.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl CnpgCluster {
    /// The `Cluster` object as JSON, with its `resourceVersion`.
    async fn cluster_json(&self) -> Result<(Value, String)> {
        let cluster =
            serde_json::to_value(self.cluster().await?).map_err(|source| Error::JsonWrite {
                what: format!("the Cluster {}", self.cluster_name()),
                source,
            })?;
        let rv = cluster["metadata"]["resourceVersion"]
            .as_str()
            .ok_or_else(|| CnpgError::NoResourceVersion {
                cluster: self.cluster_name().to_string(),
            })?
            .to_string();
        Ok((cluster, rv))
    }

    /// The installed `Cluster` CRD's schema of `spec`, if it can be read
    /// (`get` on `customresourcedefinitions`, cluster-scoped).
    async fn spec_schema(&self) -> Option<Value> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.kube().client.clone());
        match crds.get(CRD_NAME).await {
            Ok(crd) => {
                let crd = serde_json::to_value(crd).ok()?;
                let versions = crd["spec"]["versions"].as_array()?;
                let v1 = versions
                    .iter()
                    .find(|v| v["name"] == "v1")
                    .or_else(|| versions.first())?;
                Some(v1["schema"]["openAPIV3Schema"]["properties"]["spec"].clone())
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Cluster CRD cannot be read: --set fields are checked by the API server only when applied");
                None
            }
        }
    }

    /// `settings` as paths and typed values; [`Error::Config`] for one the
    /// CRD schema (when known) does not have or whose value it would refuse.
    async fn typed_settings(&self, settings: &[Setting]) -> Result<Vec<(Vec<String>, Value)>> {
        let schema = self.spec_schema().await;
        settings
            .iter()
            .map(|s| {
                let path = path_of(s)?;
                let field = match &schema {
                    Some(spec) => {
                        Some(schema_at(spec, &path[1..]).map_err(|why| Error::Config {
                            field: "--set",
                            expected: "a field of the installed CNPG Cluster CRD",
                            found: format!("{s}: {why}"),
                        })?)
                    }
                    None => None,
                };
                let value = match &s.value {
                    None => Value::Null,
                    Some(raw) => typed(field, raw).map_err(|why| Error::Config {
                        field: "--set",
                        expected: "a value the Cluster CRD accepts for this field",
                        found: format!("{s}: expected {why}"),
                    })?,
                };
                Ok((path, value))
            })
            .collect()
    }

    /// Applies `values` with one guarded patch (retried on conflicts),
    /// keeping the run's record of the original values; returns the patched
    /// object's generation (`None` in a dry run).
    async fn patch_settings(&self, values: &[(Vec<String>, Value)]) -> Result<Option<i64>> {
        let record_key = format!("{RESTORE_PREFIX}{}", self.run_id());
        for attempt in 1.. {
            let (cluster, rv) = self.cluster_json().await?;
            let mut record: Map<String, Value> = cluster["metadata"]["annotations"][&record_key]
                .as_str()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            for (path, _) in values {
                // A field under an object that was absent altogether is
                // recorded as that object's absence, so that restoring
                // removes the object rather than leaving it empty.
                let root = absent_root(&cluster, path);
                if !record.keys().any(|k| is_prefix(k, &path.join("."))) {
                    record.entry(root.join(".")).or_insert_with(|| {
                        get_path(&cluster, &root).cloned().unwrap_or(Value::Null)
                    });
                }
            }
            let values = effective(values, &record);
            // Back to every original value: the record goes.
            let restoring = record.iter().all(|(k, original)| {
                values
                    .iter()
                    .find(|(p, _)| p.join(".") == *k)
                    .is_some_and(|(_, v)| v == original)
            });
            let body = patch_body(&rv, &values, &record_key, (!restoring).then_some(&record));
            if let Some(done) = self.try_patch(body, attempt).await? {
                return Ok(done);
            }
        }
        unreachable!("the loop returns")
    }

    /// One guarded patch of the Cluster: `Some(generation)` when it was
    /// applied (`Some(None)` in a dry run), `None` after a conflict that may
    /// be retried (this was attempt `attempt`).
    async fn try_patch(&self, body: Value, attempt: u32) -> Result<Option<Option<i64>>> {
        match self
            .kube()
            .mutate(Mutation::patch(
                cluster_resource(),
                self.cluster_name(),
                body,
            ))
            .await
        {
            Ok(obj) => Ok(Some(obj.and_then(|o| o.metadata.generation))),
            Err(e) if safety::is_status(&e, 409) && attempt <= CONFLICT_RETRIES => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until CNPG has rolled out `generation`: the `Ready` condition
    /// observed it and every instance is ready; then until healthy.
    async fn wait_rolled_out(&self, generation: i64) -> Result<()> {
        let deadline = Instant::now() + ROLLOUT_TIMEOUT;
        loop {
            let status = serde_json::to_value(self.cluster().await?).map_err(|e| {
                Error::json_write(format!("the Cluster {}", self.cluster_name()), e)
            })?["status"]
                .clone();
            let ready = status["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Ready"
                        && c["status"] == "True"
                        && c["observedGeneration"]
                            .as_i64()
                            .is_some_and(|g| g >= generation)
                })
            });
            let instances = status["readyInstances"].as_i64() == status["instances"].as_i64();
            if ready && instances {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "CNPG to roll out generation {generation} of {} (phase {})",
                        self.cluster_name(),
                        status["phase"]
                    ),
                    waited: ROLLOUT_TIMEOUT,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.wait_healthy(ROLLOUT_TIMEOUT).await.map(|_| ())
    }

    /// Puts back the values recorded by runs not in `live` (and by this
    /// run, when `mine`), removing their records. Returns what was done.
    pub(crate) async fn restore_recorded(
        &self,
        live: &BTreeSet<String>,
        mine: bool,
    ) -> Result<Vec<String>> {
        let (cluster, _) = self.cluster_json().await?;
        let Some(annotations) = cluster["metadata"]["annotations"].as_object() else {
            return Ok(Vec::new());
        };
        let mut done = Vec::new();
        for (key, record) in annotations {
            let Some(run) = key.strip_prefix(RESTORE_PREFIX) else {
                continue;
            };
            let own = run == self.run_id();
            if (own && !mine) || (!own && live.contains(run)) {
                continue;
            }
            let record: Map<String, Value> = record
                .as_str()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            let values: Vec<(Vec<String>, Value)> = record
                .iter()
                .map(|(k, v)| (k.split('.').map(str::to_string).collect(), v.clone()))
                .collect();
            self.restore_for(run, &values).await?;
            let what: Vec<String> = record.iter().map(|(k, v)| format!("{k}={v}")).collect();
            done.push(format!(
                "restored {} on clusters/{} (run {run})",
                what.join(", "),
                self.cluster_name()
            ));
        }
        Ok(done)
    }

    /// Writes `values` back and removes `run`'s record, guarded and retried.
    async fn restore_for(&self, run: &str, values: &[(Vec<String>, Value)]) -> Result<()> {
        let record_key = format!("{RESTORE_PREFIX}{run}");
        for attempt in 1.. {
            let (_, rv) = self.cluster_json().await?;
            let body = patch_body(&rv, values, &record_key, None);
            if let Some(generation) = self.try_patch(body, attempt).await? {
                if let Some(g) = generation {
                    self.wait_rolled_out(g).await?;
                }
                return Ok(());
            }
        }
        unreachable!("the loop returns")
    }
}

impl Reconfigure for CnpgCluster {
    fn baseline<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<Vec<Setting>>> {
        Box::pin(async move {
            let typed = self.typed_settings(settings).await?;
            let (cluster, _) = self.cluster_json().await?;
            Ok(settings
                .iter()
                .zip(&typed)
                .map(|(s, (path, _))| Setting {
                    name: s.name.clone(),
                    value: get_path(&cluster, path).map(as_text),
                })
                .collect())
        })
    }

    fn apply<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let values = self.typed_settings(settings).await?;
            match self.patch_settings(&values).await? {
                Some(generation) => self.wait_rolled_out(generation).await,
                // A dry run: printed, not sent.
                None => Ok(()),
            }
        })
    }

    fn restore_leftovers(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            // Dead runs' records go with the sweep; this run's own now.
            let mut done = self.sweep().await?;
            done.extend(self.restore_recorded(&BTreeSet::new(), true).await?);
            Ok(done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_schema() -> Value {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/reference/cnpg/postgresql.cnpg.io_clusters.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "CNPG CRD not found at {} ({e}): these tests need ../shared/reference",
                path.display()
            )
        });
        let crd: Value = serde_norway::from_str(&text).expect("CRD YAML");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').skip(1).map(str::to_string).collect()
    }

    #[test]
    fn settings_are_typed_by_the_real_cluster_schema() {
        let spec = spec_schema();
        let lease = schema_at(&spec, &path("spec.primaryLease.leaseDurationSeconds")).unwrap();
        assert_eq!(typed(Some(lease), "5"), Ok(json!(5)));
        assert!(
            typed(Some(lease), "five")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(typed(Some(lease), "0").unwrap_err().contains("at least 1"));
        let delay = schema_at(&spec, &path("spec.switchoverDelay")).unwrap();
        assert_eq!(typed(Some(delay), "10"), Ok(json!(10)));
        // Any PostgreSQL parameter, as a string.
        let p = schema_at(
            &spec,
            &path("spec.postgresql.parameters.checkpoint_timeout"),
        )
        .unwrap();
        assert_eq!(typed(Some(p), "1min"), Ok(json!("1min")));
        // An enum.
        let m = schema_at(&spec, &path("spec.postgresql.synchronous.method")).unwrap();
        assert_eq!(typed(Some(m), "any"), Ok(json!("any")));
        assert!(typed(Some(m), "all").unwrap_err().contains("\"any\""));
        // A misspelt field names the close ones.
        let e = schema_at(&spec, &path("spec.primaryLease.leaseDurationSecond")).unwrap_err();
        assert!(e.contains("no field `leaseDurationSecond`"), "{e}");
        assert!(e.contains("leaseDurationSeconds"), "{e}");
        // A whole object is not a value.
        let obj = schema_at(&spec, &path("spec.primaryLease")).unwrap();
        assert!(typed(Some(obj), "5").is_err());
        // Without a schema: inferred.
        assert_eq!(typed(None, "5"), Ok(json!(5)));
        assert_eq!(typed(None, "true"), Ok(json!(true)));
        assert_eq!(typed(None, "1min"), Ok(json!("1min")));
    }

    #[test]
    fn only_spec_paths_are_settings() {
        assert!(path_of(&Setting::new("spec.switchoverDelay", "10")).is_ok());
        for bad in ["ttl", "status.phase", "spec", "spec..x", "metadata.name"] {
            let e = path_of(&Setting::new(bad, "1")).unwrap_err().to_string();
            assert!(
                e.contains("spec.primaryLease.leaseDurationSeconds=5"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_patch_is_guarded_and_carries_the_restore_record() {
        let values = vec![
            (
                "spec.primaryLease.leaseDurationSeconds"
                    .split('.')
                    .map(String::from)
                    .collect(),
                json!(5),
            ),
            (
                "spec.switchoverDelay"
                    .split('.')
                    .map(String::from)
                    .collect(),
                Value::Null,
            ),
        ];
        let mut record = Map::new();
        record.insert("spec.primaryLease.leaseDurationSeconds".into(), Value::Null);
        let body = patch_body("42", &values, "chaos.dev/restore-r1", Some(&record));
        assert_eq!(
            body,
            json!({
                "spec": { "primaryLease": { "leaseDurationSeconds": 5 }, "switchoverDelay": null },
                "metadata": {
                    "resourceVersion": "42",
                    "annotations": {
                        "chaos.dev/restore-r1": "{\"spec.primaryLease.leaseDurationSeconds\":null}"
                    }
                }
            })
        );
        let body = patch_body("43", &values, "chaos.dev/restore-r1", None);
        assert_eq!(
            body["metadata"]["annotations"]["chaos.dev/restore-r1"],
            Value::Null
        );
    }
}
