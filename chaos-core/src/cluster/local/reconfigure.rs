//! The local cluster's [`Reconfigure`]: Patroni's dynamic configuration
//! (`GET`/`PATCH /config`), PostgreSQL parameters through it, and the waits
//! until a change is in force on every node.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::LocalCluster;
use super::patroni::{ConfigPatch, DynamicConfig, Scalar};
use crate::cluster::reconfigure::{Reconfigure, Setting};
use crate::error::LocalError;
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
enum SettingKind {
    /// Patroni's dynamic configuration (`ttl`, `loop_wait`, …).
    Patroni,
    /// A PostgreSQL parameter (`checkpoint_timeout`, `wal_sender_timeout`, …),
    /// set through Patroni's `postgresql.parameters`.
    Postgres,
}

fn kind(s: &Setting) -> SettingKind {
    if PATRONI_SETTINGS.contains(&s.name.as_str()) {
        SettingKind::Patroni
    } else {
        SettingKind::Postgres
    }
}

/// The value as Patroni's configuration wants it: Patroni's own settings
/// typed (numbers, booleans), PostgreSQL parameters as text; `None` removes
/// the setting.
fn typed_value(s: &Setting) -> Option<Scalar> {
    let v = s.value.as_deref()?;
    Some(match kind(s) {
        SettingKind::Patroni => Scalar::typed(v),
        SettingKind::Postgres => Scalar::Text(v.to_string()),
    })
}

impl Reconfigure for LocalCluster {
    fn baseline<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<Vec<Setting>>> {
        Box::pin(async move {
            let current = dynamic_config(self).await?;
            check(self, settings, &current).await?;
            Ok(settings
                .iter()
                .map(|s| Setting {
                    value: lookup(&current, s).map(Scalar::to_string),
                    ..s.clone()
                })
                .collect())
        })
    }

    fn apply<'a>(&'a self, settings: &'a [Setting]) -> BoxFuture<'a, Result<()>> {
        Box::pin(apply(self, settings))
    }
}

/// Refuses settings the cluster does not know, and Patroni timings it
/// would not accept (`loop_wait + 2 × retry_timeout ≤ ttl`).
async fn check(
    cluster: &LocalCluster,
    settings: &[Setting],
    current: &DynamicConfig,
) -> Result<()> {
    let client = crate::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5)).await?;
    for s in settings.iter().filter(|s| kind(s) == SettingKind::Postgres) {
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
        match settings.iter().find(|s| s.name == key) {
            Some(s) => typed_value(s)?.as_i64(),
            None => current.setting(key)?.as_i64(),
        }
    };
    for key in ["ttl", "loop_wait", "retry_timeout"] {
        if let Some(s) = settings.iter().find(|s| s.name == key)
            && typed_value(s)
                .and_then(|v| v.as_i64())
                .is_none_or(|v| v < 1)
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

/// The setting's current value in Patroni's dynamic configuration.
fn lookup<'a>(config: &'a DynamicConfig, s: &Setting) -> Option<&'a Scalar> {
    match kind(s) {
        SettingKind::Patroni => config.setting(&s.name),
        SettingKind::Postgres => config.parameter(&s.name),
    }
}

/// Patroni's dynamic configuration (`GET /config` on the first node that answers).
async fn dynamic_config(cluster: &LocalCluster) -> Result<DynamicConfig> {
    let mut last = None;
    for node in cluster.nodes() {
        match cluster.patroni_api(&node.name)?.config().await {
            Ok(config) => return Ok(config),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| LocalError::NoNodes.into()))
}

/// Applies `settings` through `PATCH /config` (a `None` value removes the
/// key), then waits until every node runs with them: PostgreSQL parameters
/// reloaded (nodes that need a restart for one are restarted through
/// Patroni), Patroni timings picked up after two HA loops.
async fn apply(cluster: &LocalCluster, settings: &[Setting]) -> Result<()> {
    let mut patch = ConfigPatch::default();
    for s in settings {
        match kind(s) {
            SettingKind::Patroni => patch.set(&s.name, typed_value(s)),
            SettingKind::Postgres => patch.set_parameter(&s.name, typed_value(s)),
        }
    }
    let before = node_settings(cluster, settings).await;
    let primary = cluster.primary().await?;
    cluster.patroni_api(&primary)?.patch_config(&patch).await?;
    let loop_wait = Duration::from_secs(cluster.timings().loop_wait.into());
    tokio::time::sleep(loop_wait * 2 + Duration::from_millis(500)).await;
    if settings.iter().any(|s| kind(s) == SettingKind::Postgres) {
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
                    restart(cluster, &name).await?;
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
        .filter(|s| kind(s) == SettingKind::Postgres)
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
async fn restart(cluster: &LocalCluster, name: &str) -> Result<()> {
    let api = cluster.patroni_api(name)?;
    tracing::info!(
        node = name,
        "restarting PostgreSQL for a setting that needs it"
    );
    api.restart().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_know_their_kind_and_type() {
        let s = Setting::new("ttl", "20");
        assert_eq!(kind(&s), SettingKind::Patroni);
        assert_eq!(typed_value(&s), Some(Scalar::Number(20.into())));
        let s = Setting::new("checkpoint_timeout", "1min");
        assert_eq!(kind(&s), SettingKind::Postgres);
        assert_eq!(typed_value(&s), Some(Scalar::from("1min")));
        assert_eq!(
            typed_value(&Setting::new("synchronous_mode", "true")),
            Some(Scalar::Bool(true))
        );
        // A parameter stays text even when it looks like a number.
        assert_eq!(
            typed_value(&Setting::new("max_connections", "200")),
            Some(Scalar::from("200"))
        );
        assert_eq!(typed_value(&Setting::unset("ttl")), None);
    }

    #[test]
    fn current_values_are_found_where_patroni_keeps_them() {
        let config: DynamicConfig = serde_json::from_value(serde_json::json!({
            "ttl": 5,
            "postgresql": { "parameters": { "wal_log_hints": "on", "gone": null } }
        }))
        .expect("parses");
        let found = |s: Setting| lookup(&config, &s).map(Scalar::to_string);
        assert_eq!(found(Setting::new("ttl", "9")), Some("5".into()));
        assert_eq!(
            found(Setting::new("wal_log_hints", "off")),
            Some("on".into())
        );
        assert_eq!(found(Setting::new("gone", "1")), None);
        assert_eq!(found(Setting::new("loop_wait", "1")), None);
    }
}
