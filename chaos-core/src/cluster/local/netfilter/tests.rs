use super::delay::{class_removal, delay_commands, tc_major};
use super::*;

fn net() -> Net {
    let groups = vec![
        Group {
            name: "node1".into(),
            index: 0,
            host: "127.0.0.11".into(),
            ports: vec![5432, 8008],
        },
        Group {
            name: "node2".into(),
            index: 1,
            host: "127.0.0.12".into(),
            ports: vec![5433, 8009],
        },
        Group {
            name: "etcd".into(),
            index: DCS,
            host: "127.0.0.1".into(),
            ports: vec![2379],
        },
    ];
    Net {
        run_id: "00112233445566aa".into(),
        cgroup_dir: PathBuf::from("/nonexistent"),
        groups,
        next: AtomicU32::new(1),
        delays: Mutex::default(),
    }
}

fn joined(rules: &[Vec<String>]) -> Vec<String> {
    rules.iter().map(|r| r.join(" ")).collect()
}

#[test]
fn loss_rules_select_each_packet_once() {
    let net = net();
    let chain = "chaos-00112233445566aa-3";
    let pairs = [(0, 1), (1, 0), (0, CLIENTS)];
    let rules = net
        .degrade_rules(chain, 3, 0, &pairs, Degradation::Loss(0.25))
        .unwrap();
    let rules = joined(&rules);
    assert_eq!(
        rules,
        [
            "-m cgroup --path chaos-00112233445566aa/node1 -m connmark --mark 0x20000/0x20000 \
             -m comment --comment chaos-00112233445566aa-3 \
             -m statistic --mode random --probability 0.250000 -j DROP",
            "-m cgroup --path chaos-00112233445566aa/node1 -d 127.0.0.12 -p tcp -m multiport \
             --dports 5433,8009 -m connmark ! --mark 0x20000/0x20000 \
             -m comment --comment chaos-00112233445566aa-3 \
             -m statistic --mode random --probability 0.250000 -j DROP",
            "-m cgroup --path chaos-00112233445566aa/node2 -m connmark --mark 0x10000/0x10000 \
             -m comment --comment chaos-00112233445566aa-3 \
             -m statistic --mode random --probability 0.250000 -j DROP",
            "-m cgroup --path chaos-00112233445566aa/node2 -d 127.0.0.11 -p tcp -m multiport \
             --dports 5432,8008 -m connmark ! --mark 0x10000/0x10000 \
             -m comment --comment chaos-00112233445566aa-3 \
             -m statistic --mode random --probability 0.250000 -j DROP",
            "-m cgroup --path chaos-00112233445566aa/node1 -m connmark --mark 0x4000000/0x4000000 \
             -m comment --comment chaos-00112233445566aa-3 \
             -m statistic --mode random --probability 0.250000 -j DROP",
        ]
    );
}

#[test]
fn rate_rules_share_one_bucket_per_direction() {
    let net = net();
    let chain = "chaos-00112233445566aa-4";
    let pairs = [(0, 1), (0, DCS), (1, 0), (CLIENTS, 0)];
    let rules = joined(
        &net.degrade_rules(chain, 4, 0, &pairs, Degradation::Rate(1 << 20))
            .unwrap(),
    );
    let out = hashlimit_name(chain, true);
    let inb = hashlimit_name(chain, false);
    assert_ne!(out, inb);
    assert!(out.len() <= 15 && inb.len() <= 15, "{out} {inb}");
    assert_eq!(rules.len(), 8, "{rules:#?}");
    for r in &rules[..4] {
        assert!(
            r.ends_with(&format!(
                "--hashlimit-above 1048576b/s --hashlimit-name {out} -j DROP"
            )),
            "{r}"
        );
    }
    for r in &rules[4..] {
        assert!(
            r.ends_with(&format!("--hashlimit-name {inb} -j DROP")),
            "{r}"
        );
    }
    assert!(
        rules[7].starts_with("-m cgroup ! --path chaos-00112233445566aa -d 127.0.0.11"),
        "{}",
        rules[7]
    );
    // A small rate gets a bucket that holds a loopback packet.
    let small = joined(
        &net.degrade_rules(chain, 4, 0, &[(0, 1)], Degradation::Rate(4096))
            .unwrap(),
    );
    assert!(
        small[0].contains("--hashlimit-above 4096b/s --hashlimit-burst 131072b"),
        "{}",
        small[0]
    );
}

#[test]
fn hashlimit_names_differ_between_runs_and_faults() {
    let a = hashlimit_name("chaos-00112233445566aa-1", true);
    let b = hashlimit_name("chaos-00112233445566ab-1", true);
    let c = hashlimit_name("chaos-00112233445566aa-2", true);
    assert!(a != b && a != c && b != c);
    assert_eq!(a.len(), 14);
}

#[test]
fn delays_classify_into_a_netem_class_of_the_runs_htb() {
    let net = net();
    let major = tc_major("00112233445566aa");
    assert!((0x1000..0xf000).contains(&major));
    let rules = joined(
        &net.degrade_rules(
            "c",
            2,
            0,
            &[(0, 1)],
            Degradation::Delay(Duration::from_millis(100)),
        )
        .unwrap(),
    );
    assert!(
        rules[0].ends_with(&format!("-j CLASSIFY --set-class {major:x}:3")),
        "{}",
        rules[0]
    );
    let cmds: Vec<String> = delay_commands(major, 3, Duration::from_millis(100), true)
        .iter()
        .map(|c| c.join(" "))
        .collect();
    assert_eq!(
        cmds,
        [
            format!("qdisc add dev lo root handle {major:x}: htb default 1"),
            format!(
                "class add dev lo parent {major:x}: classid {major:x}:1 htb rate 100gbit quantum 60000"
            ),
            format!(
                "class add dev lo parent {major:x}: classid {major:x}:3 htb rate 100gbit quantum 60000"
            ),
            format!("qdisc add dev lo parent {major:x}:3 netem delay 100000us limit 100000"),
        ]
    );
    assert_eq!(
        delay_commands(major, 4, Duration::from_millis(5), false).len(),
        2
    );
    assert_eq!(
        class_removal(major, 3).join(" "),
        format!("class del dev lo classid {major:x}:3")
    );
}

#[test]
fn the_removal_script_removes_the_runs_qdisc_and_probe_namespace() {
    let script = remove_script_lines("00112233445566aa");
    let major = tc_major("00112233445566aa");
    assert!(
        script.contains(&format!("grep -q '^qdisc htb {major:x}: root'")),
        "{script}"
    );
    assert!(
        script.contains("ip netns del chaos-00112233445566aa-netem"),
        "{script}"
    );
    assert!(script.contains("chaos-00112233445566aa[-0-9]*"), "{script}");
    let check = Command::new("sh")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(check.status.success(), "{script}\n{check:?}");
}
