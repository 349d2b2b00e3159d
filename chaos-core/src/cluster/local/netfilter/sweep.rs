//! Removing what a run made — iptables chains and jumps, the latency qdisc,
//! the netem probe's namespace, cgroups — now ([`remove_run`]) or from the
//! watchdog's `remove.sh` ([`remove_script_lines`]).

use std::path::Path;
use std::process::Command;

use super::cgroup2_root;
use super::command::iptables;
use super::delay::{remove_delay_root, tc_major};

/// Removes every iptables chain (and `OUTPUT` jump) and cgroup of run `run_id`.
/// Safe to call when there are none.
pub(crate) fn remove_run(run_id: &str) {
    let prefix = format!("chaos-{run_id}");
    if let Ok(out) = Command::new("iptables").args(["-w", "-S"]).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if line.starts_with("-A OUTPUT") && line.contains(&format!("-j {prefix}")) {
                let rule: Vec<&str> = line["-A OUTPUT".len()..].split_whitespace().collect();
                let mut args = vec!["-D", "OUTPUT"];
                args.extend(rule.iter().map(|a| a.trim_matches('"')));
                let _ = iptables(&args);
            }
        }
        let chains: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| *c == prefix || c.starts_with(&format!("{prefix}-")))
            .collect();
        for c in &chains {
            let _ = iptables(&["-F", c]);
        }
        for c in &chains {
            let _ = iptables(&["-X", c]);
        }
    }
    remove_delay_root(run_id);
    let netns = format!("{prefix}-netem");
    if Path::new("/run/netns").join(&netns).exists() {
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
    }
    if let Some(root) = cgroup2_root() {
        remove_cgroup_tree(&root.join(prefix));
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    // cgroup directories are removed with rmdir (their files are virtual).
    let _ = std::fs::remove_dir(dir);
}

/// Shell lines for `remove.sh`: the same as [`remove_run`].
pub(crate) fn remove_script_lines(run_id: &str) -> String {
    let cg = cgroup2_root().map_or_else(String::new, |r| r.display().to_string());
    let major = tc_major(run_id);
    format!(
        r#"if command -v iptables >/dev/null 2>&1; then
  iptables -w -S OUTPUT 2>/dev/null | grep -e "-j chaos-{run_id}" | sed 's/^-A OUTPUT //' | while read -r rule; do eval "iptables -w -D OUTPUT $rule"; done
  chains=$(iptables -w -S 2>/dev/null | sed -n 's/^-N \(chaos-{run_id}[-0-9]*\)$/\1/p')
  for c in $chains; do iptables -w -F "$c"; done
  for c in $chains; do iptables -w -X "$c"; done
fi
if command -v tc >/dev/null 2>&1 && tc qdisc show dev lo 2>/dev/null | grep -q '^qdisc htb {major:x}: root'; then
  tc qdisc del dev lo root
fi
if [ -e /run/netns/chaos-{run_id}-netem ]; then ip netns del chaos-{run_id}-netem; fi
if [ -n '{cg}' ] && [ -d '{cg}/chaos-{run_id}' ]; then
  for d in '{cg}/chaos-{run_id}'/*/; do rmdir "$d" 2>/dev/null; done
  rmdir '{cg}/chaos-{run_id}' 2>/dev/null
fi
"#
    )
}
