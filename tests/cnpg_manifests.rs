//! Every manifest the CNPG target generates (Chaos Mesh `NetworkChaos`,
//! `IOChaos`) validates against the real CRD schemas in
//! `../shared/reference/chaos-mesh` (through `chaos_tests::crd`).

use std::time::Duration;

use chaos_core::cluster::cnpg::chaos_mesh::{
    DATA_VOLUME, WAL_VOLUME, io_latency, network_partition,
};
use chaos_core::fault::Direction;

fn valid(kind: &str, manifest: &serde_json::Value) {
    if let Err(errors) = chaos_tests::crd::validate(kind, manifest) {
        panic!(
            "{kind} rejected by its CRD schema:\n{}\n{manifest:#}",
            errors.join("\n")
        );
    }
}

#[test]
fn generated_network_chaos_validates() {
    let peers = vec![
        "cluster-example-2".to_string(),
        "cluster-example-3".to_string(),
    ];
    let external = vec!["10.96.0.1".to_string(), "172.18.0.3".to_string()];
    // isolate_primary: peers and the API server/kubelet addresses.
    valid(
        "NetworkChaos",
        &network_partition(
            "pg-chaos",
            "chaos-partition-r-0",
            "r",
            "cluster-example-1",
            &peers,
            &external,
            Direction::Both,
        ),
    );
    // primary_from_replicas: peers only.
    valid(
        "NetworkChaos",
        &network_partition(
            "pg-chaos",
            "chaos-partition-r-1",
            "r",
            "cluster-example-1",
            &peers,
            &[],
            Direction::Both,
        ),
    );
}

#[test]
fn generated_network_chaos_validates_in_each_direction() {
    let peers = vec!["cluster-example-1".to_string()];
    let external = vec!["10.96.0.1".to_string()];
    for (direction, expected) in [
        (Direction::Outbound, "to"),
        (Direction::Inbound, "from"),
        (Direction::Both, "both"),
    ] {
        // A named (non-primary) instance, one way.
        let m = network_partition(
            "pg-chaos",
            "chaos-partition-r-2",
            "r",
            "cluster-example-3",
            &peers,
            &external,
            direction,
        );
        assert_eq!(m["spec"]["direction"], expected, "{direction:?}");
        assert_eq!(
            m["spec"]["selector"]["pods"]["pg-chaos"][0],
            "cluster-example-3"
        );
        valid("NetworkChaos", &m);
    }
}

#[test]
fn generated_io_chaos_validates() {
    for volume in [DATA_VOLUME, WAL_VOLUME] {
        valid(
            "IOChaos",
            &io_latency(
                "pg-chaos",
                "chaos-io-latency-r-0",
                "r",
                "cluster-example-1",
                volume,
                Duration::from_millis(20),
            ),
        );
    }
}

#[test]
fn an_invalid_manifest_is_rejected() {
    let mut m = network_partition("pg-chaos", "x", "r", "p", &[], &[], Direction::Both);
    m["spec"]["direction"] = serde_json::json!("sideways");
    assert!(chaos_tests::crd::validate("NetworkChaos", &m).is_err());
}
