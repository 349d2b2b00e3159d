//! HAProxy in front of the local cluster: one single-host address that always
//! reaches the primary, the pattern Patroni documents for production clusters.
//!
//! HAProxy health-checks each node's Patroni REST API with `GET /primary`
//! (200 only on the leader) every 200 ms and forwards TCP to the PostgreSQL
//! port of the node that passes. A server failing two checks in a row is
//! marked down and its client connections are closed
//! (`on-marked-down shutdown-sessions`), so a client pooled on the old primary
//! notices at once instead of waiting for TCP to time out. Its state is read
//! through a stats socket in the proxy's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::RunAs;
use crate::error::LocalError;
use crate::timeline::{Event, EventKind};
use crate::{Error, Result};

/// The loopback address the proxy listens on (the nodes use `127.0.0.11` up).
pub(crate) const PROXY_HOST: &str = "127.0.0.10";

/// The name of the proxy's section in its configuration (and in its stats).
const SECTION: &str = "postgres";

/// Longest stats-socket path used: `sun_path` holds 108 bytes, and HAProxy
/// binds `<path>.<pid>.tmp` first.
const MAX_SOCKET_PATH: usize = 90;

/// One node behind the proxy.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub name: String,
    pub host: String,
    pub pg_port: u16,
    pub api_port: u16,
}

/// The proxy of one cluster: where it listens and where its files are.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    pub host: String,
    pub port: u16,
    /// `<cluster dir>/proxy`, owned by the user the cluster runs as (HAProxy
    /// creates its stats socket there).
    pub dir: PathBuf,
    /// The stats socket, unless its path would be too long for a Unix socket.
    pub socket: Option<PathBuf>,
}

impl Proxy {
    pub(crate) fn new(cluster_dir: &Path, port: u16) -> Self {
        let dir = cluster_dir.join("proxy");
        let socket = dir.join("haproxy.sock");
        let socket = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            Some(socket)
        } else {
            tracing::warn!(
                socket = %socket.display(),
                "the cluster directory is too deep for HAProxy's stats socket: no routing events"
            );
            None
        };
        Proxy {
            host: PROXY_HOST.to_string(),
            port,
            dir,
            socket,
        }
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("haproxy.log")
    }

    /// The single-host DSN through the proxy.
    pub(crate) fn dsn(&self) -> String {
        format!(
            "postgresql://postgres@{}:{}/postgres?connect_timeout=2",
            self.host, self.port
        )
    }

    /// HAProxy's configuration (2.6 syntax).
    pub(crate) fn render(&self, backends: &[Backend]) -> String {
        let mut cfg =
            String::from("# Written by chaos: the local cluster's proxy to its primary.\nglobal\n");
        cfg.push_str("    maxconn 1000\n");
        if let Some(socket) = &self.socket {
            cfg.push_str(&format!(
                "    stats socket {} mode 600 level user\n",
                socket.display()
            ));
        }
        cfg.push_str(
            "\ndefaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 2s\n\
             \x20   # Idle pooled connections stay open.\n\
             \x20   timeout client 30m\n\
             \x20   timeout server 30m\n\
             \x20   timeout check 1s\n",
        );
        cfg.push_str(&format!(
            "\nlisten {SECTION}\n\
             \x20   bind {}:{}\n\
             \x20   # Patroni's REST API answers 200 on /primary only on the leader.\n\
             \x20   option httpchk\n\
             \x20   http-check send meth GET uri /primary\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n",
            self.host, self.port
        ));
        for b in backends {
            cfg.push_str(&format!(
                "    server {} {}:{} check port {}\n",
                b.name, b.host, b.pg_port, b.api_port
            ));
        }
        cfg
    }

    /// Writes the configuration into the proxy's directory (created and given
    /// to `run_as`).
    pub(crate) fn write_config(&self, backends: &[Backend], run_as: RunAs) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        let path = self.config_path();
        fs::write(&path, self.render(backends))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        run_as.own(&self.dir)
    }

    /// `haproxy -f <dir>/proxy/haproxy.cfg -db`: in the foreground, so it stays
    /// our child, with the cluster directory on its command line, so that the
    /// cleanup finds it.
    pub(crate) fn command(&self, haproxy: &Path) -> Command {
        let mut cmd = Command::new(haproxy);
        cmd.arg("-f")
            .arg(self.config_path())
            .arg("-db")
            .current_dir(&self.dir);
        cmd
    }

    /// The servers HAProxy routes new connections to now, read from its stats
    /// socket.
    pub(crate) async fn servers_up(&self) -> Result<Vec<String>> {
        let Some(socket) = &self.socket else {
            return Err(LocalError::NoStatsSocket.into());
        };
        let context = || format!("reading HAProxy's state from {}", socket.display());
        let text = tokio::time::timeout(Duration::from_millis(500), async {
            let mut stream = tokio::net::UnixStream::connect(socket).await?;
            stream
                .write_all(format!("show servers state {SECTION}\n").as_bytes())
                .await?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        })
        .await
        .map_err(|_| {
            Error::io(
                context(),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 500 ms"),
            )
        })?
        .map_err(|e| Error::io(context(), e))?;
        Ok(routed_servers(&text))
    }
}

/// The servers of `show servers state` output (format 1) that take new
/// connections: running (or starting) and not in maintenance or drain.
pub(crate) fn routed_servers(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state …
            let (name, op, admin) = (f.get(3)?, f.get(5)?, f.get(6)?);
            let running = matches!(*op, "1" | "2");
            (running && *admin == "0").then(|| name.to_string())
        })
        .collect()
}

/// Events `proxy routes to` (detail: the node, or nodes) and `proxy routes
/// nowhere`, each time the servers HAProxy routes to change, polled `every`.
pub(crate) fn route_events(proxy: Arc<Proxy>, every: Duration) -> BoxStream<'static, Event> {
    let stream = futures::stream::unfold(
        (proxy, None::<Vec<String>>),
        move |(proxy, mut last)| async move {
            loop {
                tokio::time::sleep(every).await;
                let Ok(now) = proxy.servers_up().await else {
                    continue;
                };
                let changed = last.as_ref().is_some_and(|l| *l != now);
                let event = changed.then(|| route_event(&now));
                last = Some(now);
                if let Some(e) = event {
                    return Some((e, (proxy, last)));
                }
            }
        },
    );
    Box::pin(stream)
}

fn route_event(servers: &[String]) -> Event {
    Event::now(
        EventKind::ProxyRoutes {
            servers: servers.to_vec(),
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends() -> Vec<Backend> {
        (1..=2)
            .map(|i| Backend {
                name: format!("node{i}"),
                host: format!("127.0.0.{}", 10 + i),
                pg_port: 5000 + i as u16,
                api_port: 8000 + i as u16,
            })
            .collect()
    }

    #[test]
    fn the_config_checks_patroni_and_forwards_to_postgres() {
        let proxy = Proxy::new(Path::new("/tmp/w/abc"), 6000);
        let cfg = proxy.render(&backends());
        for line in [
            "stats socket /tmp/w/abc/proxy/haproxy.sock mode 600 level user",
            "mode tcp",
            "timeout connect 2s",
            "timeout client 30m",
            "bind 127.0.0.10:6000",
            "option httpchk",
            "http-check send meth GET uri /primary",
            "http-check expect status 200",
            "default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions",
            "server node1 127.0.0.11:5001 check port 8001",
            "server node2 127.0.0.12:5002 check port 8002",
        ] {
            assert!(cfg.contains(line), "{line:?} missing in\n{cfg}");
        }
        assert_eq!(
            proxy.dsn(),
            "postgresql://postgres@127.0.0.10:6000/postgres?connect_timeout=2"
        );
        let cmd = proxy.command(Path::new("/usr/sbin/haproxy"));
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["-f", "/tmp/w/abc/proxy/haproxy.cfg", "-db"]);
    }

    #[test]
    fn a_deep_directory_gets_no_stats_socket() {
        let deep = PathBuf::from(format!("/tmp/{}", "d".repeat(100)));
        let proxy = Proxy::new(&deep, 6000);
        assert!(proxy.socket.is_none());
        assert!(!proxy.render(&backends()).contains("stats socket"));
    }

    #[test]
    fn routed_servers_are_the_running_ones() {
        let text = "1\n\
            # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
            2 postgres 1 node1 127.0.0.11 0 0 1 1 1 8 2 0 6 0 0 0 - 5432 - 0 8008 - - 8008\n\
            2 postgres 2 node2 127.0.0.12 2 0 1 1 1 8 2 0 6 0 0 0 - 5432 - 0 8009 - - 8009\n\
            2 postgres 3 node3 127.0.0.13 2 1 1 1 1 8 2 0 6 0 0 0 - 5432 - 0 8010 - - 8010\n\n";
        assert_eq!(routed_servers(text), vec!["node2".to_string()]);
        assert!(routed_servers("1\n# header\n\n").is_empty());
        assert_eq!(
            route_event(&["node2".into()]).detail_text().as_deref(),
            Some("node2")
        );
        assert_eq!(
            route_event(&[]).kind,
            EventKind::ProxyRoutes { servers: vec![] }
        );
        assert_eq!(route_event(&[]).name(), "proxy routes nowhere");
    }

    /// The rendered configuration is valid for the installed HAProxy.
    #[test]
    fn haproxy_accepts_the_config() {
        let Ok(haproxy) = super::super::binaries::find_haproxy(None) else {
            return;
        };
        let Some(haproxy) = haproxy else {
            eprintln!("haproxy not installed: config not checked");
            return;
        };
        let dir = std::env::temp_dir().join(format!("chaos-unit-haproxy-{}", std::process::id()));
        let proxy = Proxy::new(&dir, 6000);
        fs::create_dir_all(&proxy.dir).expect("mkdir");
        fs::write(proxy.config_path(), proxy.render(&backends())).expect("write");
        let out = Command::new(&haproxy)
            .arg("-c")
            .arg("-f")
            .arg(proxy.config_path())
            .output()
            .expect("runs haproxy -c");
        let _ = fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "haproxy -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
