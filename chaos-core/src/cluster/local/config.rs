//! Patroni and PostgreSQL settings of the local cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// Patroni's DCS timings. Failover takes roughly `ttl` plus one `loop_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PatroniTimings {
    /// Leader-key time to live, in seconds.
    pub ttl: u32,
    /// Seconds between HA loop runs.
    pub loop_wait: u32,
    /// Seconds to retry DCS and PostgreSQL operations before demoting.
    pub retry_timeout: u32,
}

impl PatroniTimings {
    /// The fastest timings known to be stable for the given Patroni version.
    ///
    /// Patroni up to 3.1.x accepts ttl 5 / loop_wait 1 / retry_timeout 2
    /// (stable under load on a 2-core machine; ttl 3 was not). From 3.2.0 on
    /// Patroni clamps to ttl ≥ 20, loop_wait ≥ 1 and retry_timeout ≥ 3
    /// (`Config._validate_and_adjust_timeouts`), so those get the smallest legal values.
    pub fn for_version(version: (u32, u32, u32)) -> Self {
        if version < (3, 2, 0) {
            PatroniTimings {
                ttl: 5,
                loop_wait: 1,
                retry_timeout: 2,
            }
        } else {
            PatroniTimings {
                ttl: 20,
                loop_wait: 1,
                retry_timeout: 3,
            }
        }
    }

    /// The leader key's time to live.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl.into())
    }
}

/// How commits wait for standbys: Patroni's `synchronous_mode` and
/// `synchronous_mode_strict`. `Default` is [`Strict`](Self::Strict).
///
/// [`Quorum`](Self::Quorum) needs Patroni 4.0 or later, whose ttl is at least
/// 20 s (a failover takes that long), so it is not the default: the default
/// Patroni ([`DEFAULT_PATRONI_VERSION`](super::DEFAULT_PATRONI_VERSION)) fails
/// over in about 5 s with `Strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SynchronousMode {
    /// Every commit waits for a synchronous standby, and the primary stops
    /// accepting writes rather than commit without one (`synchronous_mode`
    /// and `synchronous_mode_strict` on). No acknowledged write is lost in a
    /// failover. The cluster boots and counts as healthy only with a
    /// synchronous standby streaming.
    #[default]
    Strict,
    /// Commits wait for a synchronous standby while there is one; without one
    /// Patroni lets the primary commit alone (`synchronous_mode` on,
    /// `synchronous_mode_strict` off): writes go on when the last standby is
    /// lost, at the risk of losing them in the next failover. Boot and health
    /// still wait for a synchronous standby.
    NonStrict,
    /// Quorum commit, CloudNativePG's `method: any` with `dataDurability:
    /// required`: `synchronous_standby_names = 'ANY 1 (node2,node3)'`, so a
    /// commit waits for any one standby, and Patroni promotes only a standby
    /// that a quorum shows to have every acknowledged commit
    /// (`synchronous_mode: quorum`, strict). Needs Patroni 4.0 or later; boot
    /// and health wait until Patroni has published the quorum in the DCS.
    Quorum,
    /// Asynchronous replication (`synchronous_mode` off): commits never wait
    /// for a standby, so a failover can lose acknowledged writes. The cluster
    /// boots and counts as healthy once every replica streams.
    Off,
}

impl SynchronousMode {
    /// Whether commits wait for a synchronous standby when one is there.
    pub fn is_synchronous(self) -> bool {
        self != SynchronousMode::Off
    }

    /// Patroni's `(synchronous_mode, synchronous_mode_strict)`.
    fn patroni_flags(self) -> (PatroniSynchronousMode, bool) {
        match self {
            SynchronousMode::Strict => (PatroniSynchronousMode::On, true),
            SynchronousMode::NonStrict => (PatroniSynchronousMode::On, false),
            SynchronousMode::Quorum => (PatroniSynchronousMode::Quorum, true),
            SynchronousMode::Off => (PatroniSynchronousMode::Off, false),
        }
    }

    /// The first Patroni version that has this mode.
    pub fn min_patroni(self) -> (u32, u32, u32) {
        match self {
            SynchronousMode::Quorum => (4, 0, 0),
            _ => (0, 0, 0),
        }
    }

    /// The mode as `--sync` names it: `strict`, `non-strict`, `quorum`, `off`.
    pub fn name(self) -> &'static str {
        match self {
            SynchronousMode::Strict => "strict",
            SynchronousMode::NonStrict => "non-strict",
            SynchronousMode::Quorum => "quorum",
            SynchronousMode::Off => "off",
        }
    }
}

impl std::str::FromStr for SynchronousMode {
    type Err = crate::Error;

    /// Parses [`name`](SynchronousMode::name).
    fn from_str(s: &str) -> crate::Result<Self> {
        [
            SynchronousMode::Strict,
            SynchronousMode::NonStrict,
            SynchronousMode::Quorum,
            SynchronousMode::Off,
        ]
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| crate::Error::Config {
            field: "synchronous mode",
            expected: "one of strict, non-strict, quorum, off",
            found: s.to_string(),
        })
    }
}

/// Who may connect, for every node: the file `hba_file` names.
pub(crate) const PG_HBA: &str = "\
local all all trust
host all all 127.0.0.0/8 trust
host replication all 127.0.0.0/8 trust
";

/// Everything needed to render one node's `patroni.yml`.
pub(crate) struct NodeConfig<'a> {
    pub scope: &'a str,
    pub name: &'a str,
    pub host: &'a str,
    pub pg_port: u16,
    pub api_port: u16,
    pub etcd_client: &'a str,
    pub node_dir: &'a Path,
    pub pg_bin: &'a Path,
    pub timings: PatroniTimings,
    pub synchronous_mode: SynchronousMode,
    pub extra_parameters: &'a [(String, String)],
    /// The `pg_ctl` shim that moves a staged template copy into place (see
    /// `template::write_bin_dir`); also the first replica-creation method.
    pub template_script: &'a Path,
}

impl NodeConfig<'_> {
    /// Renders the node's configuration, written as JSON (which is valid
    /// YAML, which Patroni reads).
    pub(crate) fn render(&self) -> PatroniConfig {
        let dir = self.node_dir.display().to_string();
        let mut parameters: BTreeMap<String, Parameter> = [
            ("max_connections", Parameter::Int(100)),
            ("shared_buffers", "32MB".into()),
            ("wal_level", "replica".into()),
            ("hot_standby", "on".into()),
            ("wal_log_hints", "on".into()),
            ("wal_keep_size", "256MB".into()),
            ("max_wal_senders", Parameter::Int(10)),
            ("wal_retrieve_retry_interval", "500ms".into()),
            ("wal_sender_timeout", "5s".into()),
            ("wal_receiver_timeout", "5s".into()),
            ("synchronous_commit", "on".into()),
            ("fsync", "on".into()),
            ("logging_collector", "on".into()),
            ("log_filename", "postgresql.log".into()),
            ("log_line_prefix", "%m [%p] ".into()),
            // Log times in UTC, so that the promotion marks read from the log
            // need no guess at the machine's zone.
            ("log_timezone", "UTC".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in self.extra_parameters {
            parameters.insert(k.clone(), Parameter::Text(v.clone()));
        }
        let PatroniTimings {
            ttl,
            loop_wait,
            retry_timeout,
        } = self.timings;
        let (synchronous_mode, synchronous_mode_strict) = self.synchronous_mode.patroni_flags();
        let api = format!("{}:{}", self.host, self.api_port);
        let pg = format!("{}:{}", self.host, self.pg_port);
        PatroniConfig {
            scope: self.scope.to_string(),
            namespace: super::etcd::NAMESPACE,
            name: self.name.to_string(),
            log: Log { level: "INFO" },
            restapi: RestApi {
                listen: api.clone(),
                connect_address: api,
            },
            etcd3: Etcd3 {
                hosts: vec![self.etcd_client.to_string()],
            },
            bootstrap: Bootstrap {
                dcs: Dcs {
                    ttl,
                    loop_wait,
                    retry_timeout,
                    maximum_lag_on_failover: 16_777_216,
                    synchronous_mode,
                    synchronous_mode_strict,
                    synchronous_node_count: 1,
                    primary_start_timeout: 0,
                    postgresql: DcsPostgresql {
                        use_pg_rewind: true,
                        use_slots: false,
                        parameters,
                    },
                },
                initdb: initdb_options(),
            },
            postgresql: Postgresql {
                listen: pg.clone(),
                connect_address: pg,
                data_dir: format!("{dir}/data"),
                bin_dir: self.pg_bin.display().to_string(),
                pgpass: format!("{dir}/pgpass"),
                // Replicas of the first boot copy the template too; the script
                // refuses after the boot, and pg_basebackup takes over.
                create_replica_methods: vec!["chaos_template", "basebackup"],
                chaos_template: ReplicaMethod {
                    command: self.template_script.display().to_string(),
                },
                basebackup: vec![ToolOption::setting("checkpoint", "fast")],
                authentication: Authentication {
                    superuser: User::named("postgres"),
                    replication: User::named("replicator"),
                    rewind: User::named("rewinder"),
                },
                // Node-local paths stay out of the DCS, which all nodes share.
                // With `hba_file` Patroni leaves pg_hba alone (we write it once,
                // see `PG_HBA`).
                parameters: LocalParameters {
                    unix_socket_directories: dir.clone(),
                    log_directory: format!("{dir}/pglog"),
                    hba_file: format!("{dir}/pg_hba.conf"),
                },
            },
            tags: Tags::default(),
        }
    }
}

/// Patroni's `bootstrap.initdb` list, from the options the template is made
/// with (Patroni adds the superuser name itself).
fn initdb_options() -> Vec<ToolOption> {
    super::template::INITDB_ARGS
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .filter(|a| !a.starts_with("username="))
        .map(|a| match a.split_once('=') {
            Some((k, v)) => ToolOption::setting(k, v),
            None => ToolOption::Flag(a.to_string()),
        })
        .collect()
}

/// One node's `patroni.yml`: the parts of Patroni's configuration file
/// (<https://patroni.readthedocs.io/en/latest/yaml_configuration.html>) the
/// local cluster sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PatroniConfig {
    /// The cluster's name in the DCS.
    pub scope: String,
    /// The DCS prefix of every cluster's keys.
    pub namespace: &'static str,
    /// The node's name.
    pub name: String,
    /// Patroni's own log.
    pub log: Log,
    /// The node's REST API.
    pub restapi: RestApi,
    /// The etcd v3 endpoints.
    pub etcd3: Etcd3,
    /// How the cluster is first made.
    pub bootstrap: Bootstrap,
    /// The node's PostgreSQL.
    pub postgresql: Postgresql,
    /// What this node may become.
    pub tags: Tags,
}

/// `log`: Patroni's own log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Log {
    /// `INFO`, `DEBUG`, …
    pub level: &'static str,
}

/// `restapi`: where the node's REST API listens and is reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RestApi {
    /// `host:port` it binds.
    pub listen: String,
    /// `host:port` other nodes and the library use.
    pub connect_address: String,
}

/// `etcd3`: the DCS, through etcd's v3 API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Etcd3 {
    /// `host:port` of each etcd client endpoint.
    pub hosts: Vec<String>,
}

/// `bootstrap`: the dynamic configuration written to the DCS when the
/// cluster is first made, and how the first data directory is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Bootstrap {
    /// The dynamic configuration (later read and changed through
    /// `GET`/`PATCH /config`).
    pub dcs: Dcs,
    /// `initdb`'s options.
    pub initdb: Vec<ToolOption>,
}

/// `bootstrap.dcs`: the dynamic configuration the cluster starts with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Dcs {
    /// Leader-key time to live, in seconds.
    pub ttl: u32,
    /// Seconds between HA loop runs.
    pub loop_wait: u32,
    /// Seconds to retry DCS and PostgreSQL operations before demoting.
    pub retry_timeout: u32,
    /// Bytes a replica may lag and still be promoted.
    pub maximum_lag_on_failover: u64,
    /// `true`, `false` or `quorum`.
    pub synchronous_mode: PatroniSynchronousMode,
    /// Whether the primary refuses commits without a synchronous standby.
    pub synchronous_mode_strict: bool,
    /// How many synchronous standbys.
    pub synchronous_node_count: u32,
    /// Seconds a failed primary is given to start again before failover.
    pub primary_start_timeout: u32,
    /// PostgreSQL settings every node shares.
    pub postgresql: DcsPostgresql,
}

/// Patroni's `synchronous_mode`: `false`, `true`, or `quorum` (Patroni 4.0+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatroniSynchronousMode {
    /// `false`.
    Off,
    /// `true`.
    On,
    /// `quorum`.
    Quorum,
}

impl Serialize for PatroniSynchronousMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PatroniSynchronousMode::Off => s.serialize_bool(false),
            PatroniSynchronousMode::On => s.serialize_bool(true),
            PatroniSynchronousMode::Quorum => s.serialize_str("quorum"),
        }
    }
}

/// `bootstrap.dcs.postgresql`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DcsPostgresql {
    /// Whether a former primary is rewound rather than re-initialised.
    pub use_pg_rewind: bool,
    /// Whether replicas get replication slots.
    pub use_slots: bool,
    /// PostgreSQL's parameters, the same on every node.
    pub parameters: BTreeMap<String, Parameter>,
}

/// A PostgreSQL parameter's value as Patroni is given it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum Parameter {
    /// A number (`max_connections: 100`).
    Int(i64),
    /// Text, units included (`shared_buffers: 32MB`).
    Text(String),
}

impl From<&str> for Parameter {
    fn from(s: &str) -> Self {
        Parameter::Text(s.to_string())
    }
}

/// One option of `initdb` or `pg_basebackup` in Patroni's list form: a bare
/// flag (`data-checksums`) or a `{name: value}` map (`{encoding: UTF8}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum ToolOption {
    /// `--name`.
    Flag(String),
    /// `--name=value`.
    Setting(BTreeMap<String, String>),
}

impl ToolOption {
    /// The option `--name=value`.
    pub(crate) fn setting(name: &str, value: &str) -> Self {
        ToolOption::Setting(BTreeMap::from([(name.to_string(), value.to_string())]))
    }
}

/// `postgresql`: the node's own PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Postgresql {
    /// `host:port` it binds.
    pub listen: String,
    /// `host:port` other nodes and clients use.
    pub connect_address: String,
    /// The data directory.
    pub data_dir: String,
    /// Where `pg_ctl`, `initdb`, … are (the shim directory).
    pub bin_dir: String,
    /// The password file Patroni writes.
    pub pgpass: String,
    /// How a replica is made, in order of preference.
    pub create_replica_methods: Vec<&'static str>,
    /// The `chaos_template` method: the staged template copy.
    pub chaos_template: ReplicaMethod,
    /// The `basebackup` method's options.
    pub basebackup: Vec<ToolOption>,
    /// The roles Patroni connects as.
    pub authentication: Authentication,
    /// Parameters of this node only (paths).
    pub parameters: LocalParameters,
}

/// A custom replica-creation method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ReplicaMethod {
    /// The program Patroni runs.
    pub command: String,
}

/// `postgresql.authentication`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Authentication {
    /// The superuser.
    pub superuser: User,
    /// The role replicas stream as.
    pub replication: User,
    /// The role `pg_rewind` connects as.
    pub rewind: User,
}

/// A role Patroni connects as (no password: `pg_hba` trusts localhost).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct User {
    /// The role's name.
    pub username: &'static str,
}

impl User {
    fn named(username: &'static str) -> Self {
        User { username }
    }
}

/// `postgresql.parameters`: the node-local paths, kept out of the DCS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LocalParameters {
    /// The node's directory, for its Unix socket.
    pub unix_socket_directories: String,
    /// Where the server log goes.
    pub log_directory: String,
    /// The `pg_hba.conf` the library writes (see [`PG_HBA`]).
    pub hba_file: String,
}

/// `tags`: what the node may become; all off.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Tags {
    /// Never promoted.
    pub nofailover: bool,
    /// Not in load balancing.
    pub noloadbalance: bool,
    /// Preferred source of replicas.
    pub clonefrom: bool,
    /// Never synchronous.
    pub nosync: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The configuration as the file Patroni reads.
    fn render(cfg: &NodeConfig<'_>) -> Value {
        serde_json::to_value(cfg.render()).expect("renders")
    }

    #[test]
    fn timings_follow_the_patroni_version() {
        assert_eq!(PatroniTimings::for_version((3, 0, 2)).ttl, 5);
        assert_eq!(PatroniTimings::for_version((2, 1, 4)).ttl, 5);
        assert_eq!(PatroniTimings::for_version((3, 1, 2)).ttl, 5);
        assert_eq!(PatroniTimings::for_version((3, 2, 0)).ttl, 20);
        let newer = PatroniTimings::for_version((4, 0, 4));
        assert!(newer.ttl >= 20 && newer.retry_timeout >= 3 && newer.loop_wait >= 1);
        assert!(newer.loop_wait + 2 * newer.retry_timeout <= newer.ttl);
    }

    fn node_config<'a>(
        extra: &'a [(String, String)],
        synchronous_mode: SynchronousMode,
    ) -> NodeConfig<'a> {
        NodeConfig {
            scope: "s",
            name: "n1",
            host: "127.0.0.11",
            pg_port: 5000,
            api_port: 8000,
            etcd_client: "127.0.0.1:2379",
            node_dir: Path::new("/tmp/x/n1"),
            pg_bin: Path::new("/usr/lib/postgresql/15/bin"),
            timings: PatroniTimings::for_version((3, 0, 2)),
            synchronous_mode,
            extra_parameters: extra,
            template_script: Path::new("/tmp/x/bin/pg_ctl"),
        }
    }

    #[test]
    fn the_synchronous_mode_renders_into_the_bootstrap_dcs_config() {
        let flags = |mode| {
            let cfg = render(&node_config(&[], mode));
            let dcs = &cfg["bootstrap"]["dcs"];
            (
                dcs["synchronous_mode"].clone(),
                dcs["synchronous_mode_strict"].clone(),
            )
        };
        assert_eq!(SynchronousMode::default(), SynchronousMode::Strict);
        assert_eq!(flags(SynchronousMode::Strict), (json!(true), json!(true)));
        assert_eq!(
            flags(SynchronousMode::NonStrict),
            (json!(true), json!(false))
        );
        assert_eq!(flags(SynchronousMode::Off), (json!(false), json!(false)));
        assert_eq!(
            flags(SynchronousMode::Quorum),
            (json!("quorum"), json!(true))
        );
        assert!(SynchronousMode::Quorum.is_synchronous());
        for mode in [
            SynchronousMode::Strict,
            SynchronousMode::NonStrict,
            SynchronousMode::Quorum,
            SynchronousMode::Off,
        ] {
            assert_eq!(mode.name().parse::<SynchronousMode>().unwrap(), mode);
        }
        let err = "any".parse::<SynchronousMode>().unwrap_err().to_string();
        assert!(err.contains("strict, non-strict, quorum, off"), "{err}");
        assert!(!SynchronousMode::Off.is_synchronous());
        assert!(SynchronousMode::NonStrict.is_synchronous());
    }

    #[test]
    fn renders_strict_synchronous_replication() {
        let extra = [("checkpoint_timeout".to_string(), "1min".to_string())];
        let cfg = render(&node_config(&extra, SynchronousMode::default()));
        let dcs = &cfg["bootstrap"]["dcs"];
        assert_eq!(dcs["synchronous_mode_strict"], true);
        assert_eq!(dcs["ttl"], 5);
        assert_eq!(
            dcs["postgresql"]["parameters"]["checkpoint_timeout"],
            "1min"
        );
        assert_eq!(cfg["postgresql"]["listen"], "127.0.0.11:5000");
        assert_eq!(cfg["postgresql"]["data_dir"], "/tmp/x/n1/data");
        assert_eq!(
            cfg["postgresql"]["chaos_template"]["command"],
            "/tmp/x/bin/pg_ctl"
        );
        assert_eq!(
            cfg["bootstrap"]["initdb"],
            json!([{ "encoding": "UTF8" }, { "locale": "C" }, "data-checksums", { "auth": "trust" }])
        );
        assert_eq!(
            cfg["postgresql"]["create_replica_methods"],
            json!(["chaos_template", "basebackup"])
        );
    }

    /// What the configuration of a default 3-node cluster's nodes was when
    /// it was rendered from `json!` values (captured from that code): the
    /// typed rendering must give Patroni the same document.
    fn rendered_before_typing(n: u16) -> Value {
        let dir = format!("/tmp/chaos-0011/node{n}");
        json!({
            "scope": "chaos-0011",
            "namespace": "/chaos/",
            "name": format!("node{n}"),
            "log": { "level": "INFO" },
            "restapi": {
                "listen": format!("127.0.0.{}:{}", 10 + n, 8000 + n),
                "connect_address": format!("127.0.0.{}:{}", 10 + n, 8000 + n),
            },
            "etcd3": { "hosts": ["127.0.0.1:2379"] },
            "bootstrap": {
                "dcs": {
                    "ttl": 5,
                    "loop_wait": 1,
                    "retry_timeout": 2,
                    "maximum_lag_on_failover": 16_777_216,
                    "synchronous_mode": true,
                    "synchronous_mode_strict": true,
                    "synchronous_node_count": 1,
                    "primary_start_timeout": 0,
                    "postgresql": {
                        "use_pg_rewind": true,
                        "use_slots": false,
                        "parameters": {
                            "max_connections": 100,
                            "shared_buffers": "32MB",
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "wal_keep_size": "256MB",
                            "max_wal_senders": 10,
                            "wal_retrieve_retry_interval": "500ms",
                            "wal_sender_timeout": "5s",
                            "wal_receiver_timeout": "5s",
                            "synchronous_commit": "on",
                            "fsync": "on",
                            "logging_collector": "on",
                            "log_filename": "postgresql.log",
                            "log_line_prefix": "%m [%p] ",
                            "log_timezone": "UTC",
                        },
                    },
                },
                "initdb": [{ "encoding": "UTF8" }, { "locale": "C" }, "data-checksums", { "auth": "trust" }],
            },
            "postgresql": {
                "listen": format!("127.0.0.{}:{}", 10 + n, 5000 + n),
                "connect_address": format!("127.0.0.{}:{}", 10 + n, 5000 + n),
                "data_dir": format!("{dir}/data"),
                "bin_dir": "/tmp/chaos-0011/bin",
                "pgpass": format!("{dir}/pgpass"),
                "create_replica_methods": ["chaos_template", "basebackup"],
                "chaos_template": { "command": "/tmp/chaos-0011/bin/pg_ctl" },
                "basebackup": [{ "checkpoint": "fast" }],
                "authentication": {
                    "superuser": { "username": "postgres" },
                    "replication": { "username": "replicator" },
                    "rewind": { "username": "rewinder" },
                },
                "parameters": {
                    "unix_socket_directories": dir,
                    "log_directory": format!("{dir}/pglog"),
                    "hba_file": format!("{dir}/pg_hba.conf"),
                },
            },
            "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
        })
    }

    #[test]
    fn a_default_three_node_cluster_renders_as_before() {
        for n in 1..=3u16 {
            let (name, host) = (format!("node{n}"), format!("127.0.0.{}", 10 + n));
            let dir = std::path::PathBuf::from(format!("/tmp/chaos-0011/{name}"));
            let cfg = NodeConfig {
                scope: "chaos-0011",
                name: &name,
                host: &host,
                pg_port: 5000 + n,
                api_port: 8000 + n,
                etcd_client: "127.0.0.1:2379",
                node_dir: &dir,
                pg_bin: Path::new("/tmp/chaos-0011/bin"),
                // DEFAULT_PATRONI_VERSION, 3.1.2.
                timings: PatroniTimings::for_version((3, 1, 2)),
                synchronous_mode: SynchronousMode::default(),
                extra_parameters: &[],
                template_script: Path::new("/tmp/chaos-0011/bin/pg_ctl"),
            };
            let rendered = render(&cfg);
            assert_eq!(rendered, rendered_before_typing(n), "node{n}");
        }
    }
}
