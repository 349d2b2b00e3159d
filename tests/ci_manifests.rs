//! What can be checked of the kind pipeline without a cluster: every manifest
//! in `ci/kind/manifests/` validates against the real CRD schemas in
//! `../shared/reference/` ([`chaos_tests::crd`]), the validator rejects what an
//! API server would reject, the test cluster is configured as the users' (see
//! `shared/context/seed-rto-rpo-plan.md`), and the scripts and the workflow
//! pass `shellcheck` and `actionlint` (both installed by `ci/install-deps.sh`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chaos_tests::crd::{self, Crds};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

fn reference() -> &'static Crds {
    crd::reference().unwrap_or_else(|e| panic!("{e}"))
}

/// The files under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|x| path.to_string_lossy().ends_with(x)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every document of every manifest file of the pipeline, with its file.
fn ci_manifests() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("ci/kind/manifests");
    let mut out = Vec::new();
    for file in files(&dir, &[".yaml", ".yml"]) {
        let text = std::fs::read_to_string(&file).expect("readable manifest");
        let docs = crd::yaml_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.extend(docs.into_iter().map(|d| (file.clone(), d)));
    }
    assert!(!out.is_empty(), "no manifest in {}", dir.display());
    out
}

/// The one manifest of `kind` in the pipeline.
fn ci_manifest(kind: &str) -> Value {
    let mut found: Vec<Value> = ci_manifests()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in ci/kind/manifests");
    found.remove(0)
}

/// A variable of `ci/kind/versions.env` (a plain `NAME=value` line, or the
/// default of `NAME=${NAME:-value}`).
fn versions_env(name: &str) -> String {
    let path = repo_root().join("ci/kind/versions.env");
    let text = std::fs::read_to_string(&path).expect("ci/kind/versions.env");
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {}", path.display()));
    let default = format!("${{{name}:-");
    value
        .strip_prefix(&default)
        .and_then(|v| v.strip_suffix('}'))
        .unwrap_or(value)
        .to_string()
}

#[test]
fn the_reference_crds_are_there() {
    let crds = reference();
    for (api, kind) in [
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("postgresql.cnpg.io/v1", "Pooler"),
        ("postgresql.cnpg.io/v1", "FailoverQuorum"),
        ("chaos-mesh.org/v1alpha1", "PodChaos"),
        ("chaos-mesh.org/v1alpha1", "NetworkChaos"),
        ("chaos-mesh.org/v1alpha1", "IOChaos"),
        ("chaos-mesh.org/v1alpha1", "StressChaos"),
    ] {
        assert!(
            crds.knows(api, kind),
            "no CRD for {api} {kind} in {}",
            crds.dir().display()
        );
    }
}

#[test]
fn a_missing_reference_directory_fails_clearly() {
    let dir = std::env::temp_dir().join(format!("chaos-no-reference-{}", std::process::id()));
    let Err(e) = Crds::load(&dir) else {
        panic!("{} does not exist, yet it loaded", dir.display());
    };
    assert!(e.contains("does not exist"), "{e}");
    assert!(e.contains(&dir.display().to_string()), "{e}");
    assert!(e.contains(crd::REFERENCE_DIR_ENV), "{e}");
}

#[test]
fn every_ci_manifest_validates_against_its_crd() {
    let crds = reference();
    let groups = crds.groups();
    let mut validated = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, doc) in ci_manifests() {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let file = file.strip_prefix(repo_root()).unwrap_or(&file).display();
        if api.is_empty() || kind.is_empty() || name.is_empty() {
            problems.push(format!(
                "{file}: a document without apiVersion, kind or name"
            ));
            continue;
        }
        let group = api.split_once('/').map(|(g, _)| g).unwrap_or_default();
        if crds.knows(api, kind) {
            match crds.validate(kind, &doc) {
                Ok(()) => {
                    validated.insert(kind.to_string());
                }
                Err(errors) => problems.extend(
                    errors
                        .into_iter()
                        .map(|e| format!("{file}: {kind} {name}: {e}")),
                ),
            }
        } else if groups.contains(group) {
            problems.push(format!(
                "{file}: {api} {kind} {name}: the reference CRDs have no schema for it"
            ));
        } else {
            println!("{file}: {api} {kind} {name}: a built-in kind, not checked here");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for kind in ["Cluster", "Pooler", "IOChaos"] {
        assert!(
            validated.contains(kind),
            "no {kind} validated: {validated:?}"
        );
    }
}

#[test]
fn the_reference_fixtures_validate_too() {
    // Objects as an API server returns them (status included): the
    // translation of the schemas must not be stricter than the server.
    let dir = crd::reference_dir().join("fixtures");
    let mut checked = 0;
    let mut problems = Vec::new();
    for file in files(&dir, &[".json"]) {
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let value: Value = serde_json::from_str(&text).expect("a JSON fixture");
        let items = match value.get("items").and_then(Value::as_array) {
            Some(items) => items.clone(),
            None => vec![value],
        };
        for item in items {
            let (Some(api), Some(kind)) = (item["apiVersion"].as_str(), item["kind"].as_str())
            else {
                continue;
            };
            if !reference().knows(api, kind) {
                continue;
            }
            checked += 1;
            if let Err(errors) = crd::validate(kind, &item) {
                problems.push(format!("{}: {}", file.display(), errors.join("; ")));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 5, "only {checked} fixtures have a CRD kind");
}

#[test]
fn an_invalid_manifest_is_rejected() {
    let cluster = ci_manifest("Cluster");
    crd::validate("Cluster", &cluster).expect("the pipeline's Cluster is valid");

    let reject = |what: &str, doc: &Value, path: &str| {
        let kind = doc["kind"].as_str().unwrap_or("Cluster");
        match crd::validate(kind, doc) {
            Ok(()) => panic!("{what}: accepted"),
            Err(errors) => assert!(
                errors.iter().any(|e| e.contains(path)),
                "{what}: no error at {path}: {errors:?}"
            ),
        }
    };
    let with = |pointer: &str, value: Value| {
        let mut doc = cluster.clone();
        *doc.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} in the Cluster")) = value;
        doc
    };
    reject(
        "a string where an integer goes",
        &with("/spec/instances", json!("3")),
        "/spec/instances",
    );
    reject(
        "a value outside an enum",
        &with(
            "/spec/postgresql/synchronous/dataDurability",
            json!("sometimes"),
        ),
        "/spec/postgresql/synchronous/dataDurability",
    );
    reject(
        "a boolean where an int-or-string goes",
        &with("/spec/probes/startup/maximumLag", json!(true)),
        "/spec/probes/startup/maximumLag",
    );
    reject(
        "an integer beyond int32",
        &with("/spec/switchoverDelay", json!(1_u64 << 40)),
        "/spec/switchoverDelay",
    );
    let mut typo = cluster.clone();
    typo["spec"]["securityContext"]["readOnlyRootFileSystem"] = json!(false);
    reject(
        "an unknown field (strict field validation)",
        &typo,
        "/spec/securityContext",
    );
    let mut label = cluster.clone();
    label["metadata"]["labels"]["replicas"] = json!(3);
    reject(
        "a label that is not a string",
        &label,
        "/metadata/labels/replicas",
    );
    let mut nameless = cluster.clone();
    nameless["metadata"] = json!({"namespace": "pg-chaos"});
    reject("an object without a name", &nameless, "/metadata");

    // int-or-string takes both.
    crd::validate(
        "Cluster",
        &with("/spec/probes/startup/maximumLag", json!(1_073_741_824)),
    )
    .expect("an integer maximumLag");

    let mut pooler = ci_manifest("Pooler");
    pooler["spec"]["type"] = json!("primary");
    reject("a Pooler type outside its enum", &pooler, "/spec/type");
    let mut io = ci_manifest("IOChaos");
    io["spec"]["percent"] = json!("100");
    reject("an IOChaos percent as a string", &io, "/spec/percent");

    let errors = crd::validate("Pooler", &cluster).expect_err("a Cluster is not a Pooler");
    assert!(errors[0].contains("expected kind \"Pooler\""), "{errors:?}");
    let mut v2 = cluster.clone();
    v2["apiVersion"] = json!("postgresql.cnpg.io/v2");
    let errors = crd::validate("Cluster", &v2).expect_err("no v2 Cluster");
    assert!(
        errors[0].contains("no CRD schema for postgresql.cnpg.io/v2 Cluster"),
        "{errors:?}"
    );
}

#[test]
fn the_ci_cluster_is_configured_as_the_seed() {
    let ns = ci_manifest("Namespace");
    let cluster = ci_manifest("Cluster");
    let pooler = ci_manifest("Pooler");
    let namespace = versions_env("CNPG_NAMESPACE");
    let name = versions_env("CNPG_CLUSTER");

    assert_eq!(ns["metadata"]["name"], namespace.as_str());
    assert_eq!(
        ns["metadata"]["labels"]["chaos.dev/allow"], "true",
        "the namespace opts in"
    );
    assert_eq!(cluster["metadata"]["name"], name.as_str());
    assert_eq!(cluster["metadata"]["namespace"], namespace.as_str());
    let spec = &cluster["spec"];
    assert_eq!(spec["instances"], 3);
    assert_eq!(
        spec["postgresql"]["synchronous"],
        json!({"method": "any", "number": 1, "dataDurability": "required"}),
        "synchronous replication as in the seed"
    );
    assert!(spec["walStorage"]["size"].is_string(), "a WAL volume");
    assert_eq!(spec["probes"]["startup"]["type"], "streaming");
    assert_eq!(
        spec["securityContext"]["readOnlyRootFilesystem"], false,
        "IOChaos needs a writable root filesystem"
    );
    let image = spec["imageName"].as_str().expect("a pinned imageName");
    assert!(
        image.contains(':') && !image.ends_with(":latest"),
        "{image}"
    );

    assert_eq!(
        pooler["metadata"]["name"],
        versions_env("CNPG_POOLER").as_str()
    );
    assert_eq!(pooler["metadata"]["namespace"], namespace.as_str());
    assert_eq!(pooler["spec"]["cluster"]["name"], name.as_str());
    assert_eq!(pooler["spec"]["type"], "rw");

    let io = ci_manifest("IOChaos");
    assert_eq!(io["metadata"]["namespace"], namespace.as_str());
    assert_eq!(io["spec"]["selector"]["namespaces"], json!([namespace]));
    assert_eq!(
        io["spec"]["selector"]["labelSelectors"]["cnpg.io/cluster"],
        name.as_str()
    );
}

#[test]
fn manifests_avoid_yaml_1_1_booleans() {
    // Kubernetes reads YAML 1.1, where an unquoted yes/no/on/off is a boolean;
    // the parser here reads YAML 1.2, where it is a string.
    let mut problems = Vec::new();
    for file in files(&repo_root().join("ci/kind"), &[".yaml", ".yml"]) {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (n, line) in text.lines().enumerate() {
            let line = line.split(" #").next().unwrap_or_default().trim_end();
            let value = line
                .rsplit_once(": ")
                .map(|(_, v)| v)
                .or_else(|| line.trim_start().strip_prefix("- "))
                .unwrap_or_default()
                .trim();
            if ["yes", "no", "on", "off", "y", "n"].contains(&value.to_ascii_lowercase().as_str()) {
                problems.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "quote these values:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_workflow_runs_existing_strict_scripts() {
    let root = repo_root();
    let scripts = files(&root.join("ci/kind"), &[".sh"]);
    assert!(!scripts.is_empty());
    for script in &scripts {
        let text = std::fs::read_to_string(script).expect("readable");
        let name = script.file_name().unwrap_or_default();
        if name == "lib.sh" {
            continue; // sourced, not run
        }
        assert!(
            text.starts_with("#!/usr/bin/env bash\n") && text.contains("\nset -euo pipefail\n"),
            "{}: a bash script with `set -euo pipefail`",
            script.display()
        );
        let mode = std::fs::metadata(script)
            .expect("stat")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", script.display());
    }
    let workflow = root.join(".github/workflows/kind.yml");
    let text = std::fs::read_to_string(&workflow).expect("the kind workflow");
    let doc = crd::yaml_documents(&text).expect("YAML").remove(0);
    let steps = doc["jobs"]["cnpg"]["steps"].as_array().expect("steps");
    let mut run = Vec::new();
    for step in steps {
        if let Some(cmd) = step["run"].as_str() {
            for word in cmd.split_whitespace().filter(|w| w.starts_with("ci/")) {
                let path = root.join(word);
                assert!(
                    path.is_file(),
                    "the workflow runs {word}, which does not exist"
                );
                run.push(word.to_string());
            }
        }
    }
    for script in [
        "ci/kind/create-cluster.sh",
        "ci/kind/run-tests.sh",
        "ci/kind/run-cli.sh",
    ] {
        assert!(
            run.iter().any(|r| r == script),
            "the workflow never runs {script}"
        );
    }
    let cleanup = steps
        .iter()
        .find(|s| s["run"] == "ci/kind/delete-cluster.sh")
        .expect("a step deletes the cluster");
    assert_eq!(
        cleanup["if"], "always()",
        "the cluster is deleted whatever happened"
    );
}

/// The path of `tool`, or `None` after a notice when a developer's machine
/// lacks it. CI (root, or `CI` set) runs `ci/install-deps.sh` first, so
/// there a missing tool fails.
fn linter(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_some() {
        return found;
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let root = nix::unistd::Uid::effective().is_root();
    assert!(
        !(ci || root),
        "`{tool}` is not installed: run ci/install-deps.sh (CI does before the tests)"
    );
    chaos_tests::skipped(
        &format!("`{tool}`, which ci/install-deps.sh installs"),
        &format!("the {tool} check"),
    );
    None
}

fn run_linter(mut cmd: Command, what: &str) {
    let out = cmd
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} found problems ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shellcheck_passes_on_every_ci_script() {
    let Some(shellcheck) = linter("shellcheck") else {
        return;
    };
    let root = repo_root();
    let mut scripts = files(&root.join("ci"), &[".sh", ".env"]);
    scripts.push(root.join(".ci/run"));
    scripts.push(root.join("ci/test"));
    assert!(scripts.len() > 5, "{scripts:?}");
    let mut cmd = Command::new(shellcheck);
    // -x follows `source`; the directives' paths are relative to the root.
    cmd.args(["-x", "--severity=style"])
        .args(scripts.iter().map(|s| s.strip_prefix(&root).unwrap_or(s)));
    run_linter(cmd, "shellcheck");
}

#[test]
fn actionlint_passes_on_the_workflows() {
    let Some(actionlint) = linter("actionlint") else {
        return;
    };
    let workflows = files(&repo_root().join(".github/workflows"), &[".yml", ".yaml"]);
    assert!(!workflows.is_empty(), "no workflow");
    let mut cmd = Command::new(actionlint);
    // Checks the shell of `run:` steps with shellcheck too, when installed.
    cmd.args(["-no-color"]).args(&workflows);
    run_linter(cmd, "actionlint");
}

/// CI runs exactly the README's test command: its second line.
#[test]
fn ci_runs_the_readme_test_command() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the README starts with a sh block");
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 2, "two command lines: {lines:?}");
    assert_eq!(lines[1], "ci/install-deps.sh && ci/test", "{lines:?}");
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert_eq!(
        ci.lines().rev().find(|l| !l.trim().is_empty()),
        Some(lines[1]),
        "the last command of .ci/run: {ci}"
    );
}

/// The README's fault table and its `--fault` flags name exactly the fault
/// catalogue's faults: a fault added to the catalogue must be documented.
#[test]
fn the_readme_documents_every_fault_of_the_catalogue() {
    use chaos_core::fault::FaultKind;
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let flags = readme
        .split("`--fault kill-primary|")
        .nth(1)
        .and_then(|rest| rest.split("`--fault-cmd").next())
        .expect("the README's `--fault` flags");
    let flags = format!("`--fault kill-primary|{flags}");
    for kind in FaultKind::ALL {
        let name = kind.name();
        let in_table =
            readme.contains(&format!("(`{name}`)")) || readme.contains(&format!("(`{name}="));
        assert!(in_table, "the README's fault table has no row for `{name}`");
        let in_flags = flags.contains(&format!("|{name}|"))
            || flags.contains(&format!("|{name}`"))
            || flags.contains(&format!("`--fault {name}|"))
            || flags.contains(&format!("`{name}="))
            || flags.contains(&format!("--fault {name}="));
        assert!(
            in_flags,
            "the README's `--fault` flags do not name `{name}`:\n{flags}"
        );
    }
    let row_names = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("(`"))
        .filter_map(|l| l.split("(`").nth(1)?.split(['`', '=']).next())
        .collect::<Vec<_>>();
    for name in row_names {
        assert!(
            FaultKind::parse(name).is_ok(),
            "the README's fault table names `{name}`, which the catalogue does not have"
        );
    }
}
