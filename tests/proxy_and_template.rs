//! The local cluster's boot options: HAProxy in front of it (one address that
//! follows the primary) and the cached data-directory template that makes the
//! next boot faster. Tests that boot a cluster take this file's lock so that at
//! most one runs at a time on a small CI machine.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chaos_core::fault::DeletePrimary;
use chaos_core::prelude::*;
use chaos_core::timeline::EventKind;
use chaos_tests::{init_tracing, port_free, processes_of, scratch, snapshot, still_running};

/// One cluster at a time: each is 3 PostgreSQL servers on a 2-core machine.
static CLUSTER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().await
}

/// The command name of `pid` (`/proc/<pid>/comm`).
fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
}

/// `(pg_is_in_recovery(), inet_server_port())` over a new connection to `dsn`.
async fn whoami(dsn: &str) -> chaos_core::Result<(bool, i32)> {
    let client = chaos_core::pg::connect(dsn, Duration::from_secs(2)).await?;
    let row = client
        .query_one("SELECT pg_is_in_recovery(), inet_server_port()", &[])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// HAProxy in front of the local cluster: one single-host address that reaches
/// the primary, follows a failover (closing the connections to the old
/// primary), reports its changes of route as events, and goes away with the
/// cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_reaches_the_primary_and_follows_a_failover() {
    use futures::StreamExt;
    use std::sync::{Arc, Mutex};
    init_tracing();
    let _serial = serial().await;
    let work = scratch("proxy");
    let boot = Instant::now();
    let cluster = LocalCluster::builder()
        .work_dir(&work)
        .proxy(true)
        .start()
        .await
        .expect("cluster boots with its proxy");
    println!("boot time with the proxy: {:?}", boot.elapsed());
    let dir = cluster.dir().to_path_buf();
    let proxy_dsn = cluster.proxy_dsn().expect("a proxy");
    assert!(
        proxy_dsn.starts_with("postgresql://postgres@127.0.0.10:")
            && proxy_dsn.ends_with("/postgres?connect_timeout=2"),
        "{proxy_dsn}"
    );
    assert_eq!(cluster.router_dsn().as_deref(), Some(proxy_dsn.as_str()));
    let haproxy: Vec<i32> = processes_of(&dir)
        .into_iter()
        .filter(|&p| comm(p).as_deref() == Some("haproxy"))
        .collect();
    assert_eq!(
        haproxy.len(),
        1,
        "one haproxy among the cluster's processes"
    );

    // Through the proxy, a client reaches the primary.
    let old = cluster.primary().await.unwrap();
    let old_port = i32::from(cluster.node(&old).unwrap().pg_port);
    assert_eq!(whoami(&proxy_dsn).await.unwrap(), (false, old_port));
    assert_eq!(cluster.proxy_routes().await.unwrap(), vec![old.clone()]);
    let primary_dsn = cluster.primary_dsn().await.unwrap().expect("a primary");
    assert_eq!(primary_dsn, cluster.node(&old).unwrap().dsn());
    assert_eq!(whoami(&primary_dsn).await.unwrap(), (false, old_port));
    // The same cluster seen as an external one: its primary's node DSN.
    let external = ExternalCluster::builder(cluster.rw_dsn())
        .node_dsns(cluster.nodes().iter().map(|n| n.dsn()))
        .build()
        .unwrap();
    assert_eq!(
        external.primary_dsn().await.unwrap().as_deref(),
        Some(primary_dsn.as_str())
    );
    let without_nodes = ExternalCluster::builder(cluster.rw_dsn()).build().unwrap();
    assert_eq!(without_nodes.primary_dsn().await.unwrap(), None);

    // The target's events, with their arrival times.
    let events = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn({
        let events = events.clone();
        let mut stream = Arc::new(cluster.clone()).events();
        async move {
            while let Some(e) = stream.next().await {
                events.lock().unwrap().push(e);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pooled = chaos_core::pg::connect(&proxy_dsn, Duration::from_secs(2))
        .await
        .unwrap();
    pooled.simple_query("SELECT 1").await.unwrap();
    let fault = DeletePrimary::kill().inject(&cluster).await.unwrap();
    let killed = Instant::now();

    // Poll Patroni and the proxy side by side: when did the new leader appear,
    // when did a new connection through the proxy reach it?
    let mut leader_seen: Option<(String, Instant)> = None;
    let mut routed: Option<Instant> = None;
    while killed.elapsed() < Duration::from_secs(30) && routed.is_none() {
        if leader_seen.is_none()
            && let Ok(t) = cluster.topology().await
            && let Some(p) = t.primary_name().filter(|p| *p != old)
        {
            leader_seen = Some((p.to_string(), Instant::now()));
        }
        if let Ok((false, port)) = whoami(&proxy_dsn).await
            && port != old_port
        {
            routed = Some(Instant::now());
            if leader_seen.is_none()
                && let Ok(t) = cluster.topology().await
                && let Some(p) = t.primary_name().filter(|p| *p != old)
            {
                leader_seen = Some((p.to_string(), Instant::now()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed =
        routed.expect("a new connection through the proxy reached a new primary within 30 s");
    let (new, leader_at) = leader_seen.expect("Patroni reports a new leader");
    let new_port = i32::from(cluster.node(&new).unwrap().pg_port);
    assert_eq!(whoami(&proxy_dsn).await.unwrap(), (false, new_port));
    println!(
        "proxy: new leader {new} seen by Patroni {:?} after the kill; the proxy routed to it {:?} after the kill, {} ms after the leader appeared",
        leader_at - killed,
        routed - killed,
        routed.saturating_duration_since(leader_at).as_millis()
    );
    // The connection to the old primary was closed.
    assert!(
        pooled.simple_query("SELECT 1").await.is_err(),
        "the old connection still works"
    );
    assert!(pooled.is_closed());
    assert_eq!(
        cluster.primary_dsn().await.unwrap().as_deref(),
        Some(cluster.node(&new).unwrap().dsn().as_str())
    );

    // The route change is an event of the target, after the new primary's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();
    let events = events.lock().unwrap().clone();
    let at = |is: &dyn Fn(&EventKind) -> bool| events.iter().find(|e| is(&e.kind)).map(|e| e.at);
    let new_primary = at(&|k| matches!(k, EventKind::NewPrimary { node, .. } if *node == new))
        .expect("new primary event");
    let route = at(&|k| matches!(k, EventKind::ProxyRoutes { servers } if servers.contains(&new)))
        .unwrap_or_else(|| panic!("no route event: {events:?}"));
    println!(
        "events: `proxy routes to ({new})` {:+.0} ms after `new primary observed`",
        route.ms_since(new_primary)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::ProxyRoutes { servers } if servers.is_empty())),
        "the proxy had no server between the kill and the promotion: {events:?}"
    );

    // Healing restarts the old primary, which rejoins behind the proxy as a
    // standby; the proxy keeps routing to the new primary.
    fault.heal().await.unwrap();
    assert_eq!(cluster.proxy_routes().await.unwrap(), vec![new.clone()]);

    // HAProxy goes away with the cluster.
    let procs = snapshot(&dir);
    let port: u16 = proxy_dsn
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap();
    assert!(!port_free("127.0.0.10", port), "the proxy listens");
    drop(cluster);
    let left = still_running(&procs);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(
        haproxy.iter().all(|p| comm(*p).is_none()),
        "haproxy survived"
    );
    assert!(
        port_free("127.0.0.10", port),
        "the proxy's port is still taken"
    );
    std::fs::remove_dir_all(work).ok();
}

/// Without a proxy, asking for it names HAProxy; boot time without one, to
/// compare with the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_proxy_the_proxy_dsn_says_how_to_get_one() {
    init_tracing();
    let err = LocalCluster::builder()
        .proxy(true)
        .haproxy("/nonexistent/haproxy")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BinaryNotFound {
                package: "haproxy",
                ..
            }
        ),
        "{err}"
    );

    let _serial = serial().await;
    let boot = Instant::now();
    let cluster = LocalCluster::builder()
        .proxy(false)
        .start()
        .await
        .expect("cluster boots");
    println!("boot time without the proxy: {:?}", boot.elapsed());
    let err = cluster.proxy_dsn().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { field: "proxy", .. }), "{msg}");
    assert!(
        msg.contains("haproxy") && msg.contains("proxy(true)"),
        "{msg}"
    );
    assert!(cluster.router_dsn().is_none());
    assert!(
        processes_of(cluster.dir())
            .iter()
            .all(|&p| comm(p).as_deref() != Some("haproxy"))
    );
    assert!(cluster.primary_dsn().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_template_serves_the_next_boot_and_steps_aside_after_it() {
    use chaos_core::cluster::local::TemplateSource;
    init_tracing();
    let _serial = serial().await;
    let cache = scratch("template-cache");
    let _ = std::fs::remove_dir_all(&cache);
    // The template of another PostgreSQL (another key) is replaced, not used.
    std::fs::create_dir_all(cache.join("pgdata-postgres-postgresql-9.6-v1/data")).unwrap();
    let boot = || {
        LocalCluster::builder()
            .nodes(2)
            .proxy(false)
            .template_cache_dir(&cache)
            .start()
    };

    let first = boot().await.expect("a cold boot");
    let t = first.boot_timings().expect("boot timings").clone();
    assert_eq!(t.template, TemplateSource::Created);
    assert!(
        t.leader_running <= t.sync_standby
            && t.replicas_streaming <= t.first_write
            && t.sync_standby <= t.first_write
            && t.first_write <= t.total,
        "{t:?}"
    );
    let templates: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert!(
        templates[0].starts_with("pgdata-") && !templates[0].contains("9.6"),
        "{templates:?}"
    );
    // The boot is over: no staged copy is left, and a replica made now comes
    // from pg_basebackup, not from the template.
    assert!(!first.dir().join("staged-data").exists());
    let replica = first
        .topology()
        .await
        .unwrap()
        .standbys()
        .next()
        .expect("a standby")
        .name
        .clone();
    first
        .stop_node(&replica, Duration::from_secs(30))
        .await
        .unwrap();
    let node = first.node(&replica).unwrap().clone();
    std::fs::remove_dir_all(node.data_dir()).unwrap();
    first.start_node(&replica).unwrap();
    first
        .wait_replica(&replica, Duration::from_secs(60))
        .await
        .expect("the wiped replica is re-created");
    let log = std::fs::read_to_string(first.dir().join(&replica).join("patroni.log")).unwrap();
    assert!(
        log.contains("replica has been created using basebackup"),
        "the re-created replica should come from pg_basebackup:\n{log}"
    );
    first.wait_healthy(Duration::from_secs(60)).await.unwrap();
    drop(first);

    let second = boot().await.expect("a warm boot");
    assert_eq!(
        second.boot_timings().unwrap().template,
        TemplateSource::Cached
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&cache);
}
