//! Wrapped errors keep their source, of the right type.

use std::error::Error as _;

use super::*;

#[test]
fn a_runtime_failure_keeps_its_io_error() {
    let e: Error = ExperimentError::Runtime {
        source: std::io::Error::new(std::io::ErrorKind::OutOfMemory, "no threads"),
    }
    .into();
    assert!(matches!(
        e,
        Error::Experiment(ExperimentError::Runtime { .. })
    ));
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::OutOfMemory);
    assert_eq!(
        e.to_string(),
        "could not build the test runtime: no threads"
    );
}

#[test]
fn a_parse_failure_says_so_and_keeps_serde_json_s_error() {
    let source = serde_json::from_str::<u32>("{").unwrap_err();
    let e = Error::json_read("the report /tmp/r.json", source);
    let text = e.to_string();
    assert!(
        text.starts_with("parsing the report /tmp/r.json: "),
        "{text}"
    );
    assert!(!text.contains("serialising"), "{text}");
    let json = e
        .source()
        .and_then(|s| s.downcast_ref::<serde_json::Error>())
        .expect("serde_json's error is the source");
    assert_eq!(json.line(), 1);
}

#[test]
fn a_failed_task_keeps_tokio_s_join_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let join = rt.block_on(async {
        tokio::spawn(async { panic!("boom") })
            .await
            .expect_err("the task panicked")
    });
    let e = Error::Task {
        what: "the sweep task",
        source: join,
    };
    let join = e
        .source()
        .and_then(|s| s.downcast_ref::<tokio::task::JoinError>())
        .expect("the JoinError is the source");
    assert!(join.is_panic());
    assert!(e.to_string().starts_with("the sweep task failed: "), "{e}");
}

#[test]
fn a_failed_switchover_request_keeps_the_error_it_wraps() {
    let e: Error = FaultError::SwitchoverRequest {
        url: "http://127.0.0.1:8008/switchover".into(),
        source: Box::new(Error::Timeout {
            what: "Patroni".into(),
            waited: Duration::from_secs(20),
            logs: String::new(),
        }),
    }
    .into();
    let inner = e
        .source()
        .and_then(|s| s.downcast_ref::<Error>())
        .expect("the wrapped Error is the source");
    assert!(matches!(inner, Error::Timeout { .. }), "{inner:?}");
    assert_eq!(
        e.to_string(),
        "switchover request failed (POST http://127.0.0.1:8008/switchover): \
         timed out after 20s waiting for Patroni"
    );
}

#[test]
fn area_errors_read_as_before() {
    let e: Error = LocalError::NoSuchNode {
        name: "node9".into(),
    }
    .into();
    assert_eq!(e.to_string(), "no node called node9");
    let e: Error = FaultError::StillStopped {
        nodes: "node1,node2".into(),
        waited: Duration::from_secs(30),
    }
    .into();
    assert_eq!(
        e.to_string(),
        "processes of node1,node2 still stopped 30s after SIGCONT"
    );
}
