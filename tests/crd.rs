//! Kubernetes manifests checked against the real CRD schemas: the
//! `openAPIV3Schema` of every `CustomResourceDefinition` under
//! `../shared/reference/` (CloudNativePG's `Cluster`, `Pooler`,
//! `FailoverQuorum`; Chaos Mesh's `PodChaos`, `NetworkChaos`, `IOChaos`,
//! `StressChaos`), so that a manifest the library generates or one the kind
//! pipeline applies (`ci/kind/manifests/`) is rejected here, not by an API
//! server in a pipeline that runs elsewhere.
//!
//! ```no_run
//! let cluster: serde_json::Value = serde_json::json!({
//!     "apiVersion": "postgresql.cnpg.io/v1",
//!     "kind": "Cluster",
//!     "metadata": {"name": "pg"},
//!     "spec": {"instances": 3, "storage": {"size": "1Gi"}},
//! });
//! chaos_tests::crd::validate("Cluster", &cluster).expect("a valid Cluster");
//! ```
//!
//! A CRD's schema is a Kubernetes *structural schema*, an OpenAPI v3 dialect of
//! JSON Schema draft 4. It is translated for a plain draft-4 validator
//! ([`to_json_schema`]) with the API server's semantics where they are
//! checkable without a server:
//! - `x-kubernetes-int-or-string: true` accepts an integer or a string only
//!   (a bare such node has no `type`, and would otherwise accept anything);
//! - unknown fields are errors, as with kubectl's strict field validation (the
//!   default since Kubernetes 1.27), except under
//!   `x-kubernetes-preserve-unknown-fields: true`; an
//!   `x-kubernetes-embedded-resource` also takes `apiVersion`, `kind` and
//!   `metadata`;
//! - `nullable: true` accepts `null`; `format: int32`/`int64` bound the
//!   integer; `x-kubernetes-list-type: set` wants unique items;
//! - `metadata` is checked as the API server checks `ObjectMeta`'s common
//!   fields (a name, string labels and annotations).
//!
//! Not checked: CEL rules (`x-kubernetes-validations`), the uniqueness of the
//! keys of `x-kubernetes-list-type: map` lists, and string formats, which
//! only an API server evaluates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Overrides where the reference CRDs are read from.
pub const REFERENCE_DIR_ENV: &str = "CHAOS_REFERENCE_DIR";

/// The directory of the reference CRDs: `$CHAOS_REFERENCE_DIR`, or
/// `shared/reference` beside the repository (`../shared/reference` from its
/// root, as laid out for developers and CI).
pub fn reference_dir() -> PathBuf {
    match std::env::var_os(REFERENCE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"),
    }
}

/// `(apiVersion, kind)`.
type Key = (String, String);

/// One served version of one CRD.
struct Schema {
    /// The CRD file it was read from.
    source: PathBuf,
    /// The translated schema ([`to_json_schema`]).
    schema: Value,
    /// Compiled on first use.
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

/// The CRDs of a directory, by `apiVersion` and `kind`.
pub struct Crds {
    dir: PathBuf,
    schemas: BTreeMap<Key, Schema>,
}

impl Crds {
    /// Reads every CRD in the `*.yaml`/`*.yml` files of `dir` and of its
    /// subdirectories (one level down).
    ///
    /// # Errors
    /// A message naming the directory when it is missing, unreadable or holds
    /// no CRD, or naming the file whose YAML or CRD is malformed.
    pub fn load(dir: &Path) -> Result<Crds, String> {
        if !dir.is_dir() {
            return Err(format!(
                "the reference CRD directory {} does not exist: it is `shared/reference` \
                 beside the repository (../shared/reference from its root); set \
                 {REFERENCE_DIR_ENV} to read it from elsewhere",
                dir.display()
            ));
        }
        let mut files = yaml_files(dir)?;
        for sub in subdirs(dir)? {
            files.extend(yaml_files(&sub)?);
        }
        files.sort();
        let mut schemas = BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let docs = yaml_documents(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            for doc in docs {
                if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                    continue;
                }
                for (key, schema) in
                    crd_versions(&doc).map_err(|e| format!("{}: {e}", file.display()))?
                {
                    schemas.insert(
                        key,
                        Schema {
                            source: file.clone(),
                            schema,
                            validator: OnceLock::new(),
                        },
                    );
                }
            }
        }
        if schemas.is_empty() {
            return Err(format!(
                "no CustomResourceDefinition in the YAML files of {}",
                dir.display()
            ));
        }
        Ok(Crds {
            dir: dir.to_path_buf(),
            schemas,
        })
    }

    /// The directory the CRDs were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every `(apiVersion, kind)` with a schema.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.schemas.keys().map(|(a, k)| (a.as_str(), k.as_str()))
    }

    /// Whether `apiVersion`/`kind` has a schema.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.schemas
            .contains_key(&(api_version.to_string(), kind.to_string()))
    }

    /// The API groups of the CRDs (`postgresql.cnpg.io`, `chaos-mesh.org`).
    pub fn groups(&self) -> BTreeSet<&str> {
        self.schemas
            .keys()
            .filter_map(|(a, _)| a.split_once('/').map(|(g, _)| g))
            .collect()
    }

    /// Validates one object of kind `kind` (its `kind` must say so) against
    /// the schema of its `apiVersion`.
    ///
    /// # Errors
    /// Every problem found, each as `path: message` (`/spec/instances: "3" is
    /// not of type "integer"`), or why the object could not be checked.
    pub fn validate(&self, kind: &str, manifest: &Value) -> Result<(), Vec<String>> {
        let Some(obj) = manifest.as_object() else {
            return Err(vec![format!(
                "a {kind} manifest must be an object, not {manifest}"
            )]);
        };
        let found = obj.get("kind").and_then(Value::as_str);
        if found != Some(kind) {
            return Err(vec![format!(
                "expected kind {kind:?}, the manifest says {}",
                found.map_or_else(|| "nothing".to_string(), |k| format!("{k:?}"))
            )]);
        }
        let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str) else {
            return Err(vec![format!(
                "the {kind} manifest has no string `apiVersion`"
            )]);
        };
        let key = (api_version.to_string(), kind.to_string());
        let Some(schema) = self.schemas.get(&key) else {
            let known: Vec<String> = self.kinds().map(|(a, k)| format!("{a} {k}")).collect();
            return Err(vec![format!(
                "no CRD schema for {api_version} {kind} in {} (known: {})",
                self.dir.display(),
                known.join(", ")
            )]);
        };
        let validator = schema
            .validator
            .get_or_init(|| {
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .should_validate_formats(false)
                    .build(&schema.schema)
                    .map_err(|e| {
                        format!("compiling the schema of {}: {e}", schema.source.display())
                    })
            })
            .as_ref()
            .map_err(|e| vec![e.clone()])?;
        let mut errors: Vec<String> = validator
            .iter_errors(manifest)
            .map(|e| {
                let path = e.instance_path().to_string();
                let path = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("{path}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            errors.sort();
            errors.dedup();
            Err(errors)
        }
    }
}

/// The CRDs of [`reference_dir`], read once.
///
/// # Errors
/// As [`Crds::load`].
pub fn reference() -> Result<&'static Crds, String> {
    static CRDS: OnceLock<Result<Crds, String>> = OnceLock::new();
    CRDS.get_or_init(|| Crds::load(&reference_dir()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Validates `manifest`, of kind `kind`, against the reference CRDs
/// ([`Crds::validate`] on [`reference`]).
///
/// # Errors
/// Every problem found, or why it could not be checked (such as a missing
/// reference directory).
pub fn validate(kind: &str, manifest: &Value) -> Result<(), Vec<String>> {
    reference().map_err(|e| vec![e])?.validate(kind, manifest)
}

/// The documents of a (multi-document) YAML text as JSON values; empty
/// documents (a lone `---`, comments only) are left out.
///
/// # Errors
/// The parser's message, with the position of the problem.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("YAML document {}: {e}", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Translates a Kubernetes structural schema into plain JSON Schema draft 4
/// with the API server's semantics (see the module's documentation).
pub fn to_json_schema(node: &Value) -> Value {
    convert(node, false)
}

/// `in_junctor`: inside `allOf`/`anyOf`/`oneOf`/`not`, where a structural
/// schema only adds value checks and declares no fields of its own.
fn convert(node: &Value, in_junctor: bool) -> Value {
    let Some(src) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in src {
        let v = match k.as_str() {
            // Documentation only; dropped to keep the compiled schema small.
            "description" => continue,
            "properties" | "patternProperties" => Value::Object(
                v.as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, s)| (name.clone(), convert(s, in_junctor)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "additionalProperties" | "items" if v.is_object() => convert(v, false),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                v.as_array()
                    .map(|a| a.iter().map(|s| convert(s, true)).collect())
                    .unwrap_or_default(),
            ),
            "not" => convert(v, true),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    let flag = |name: &str| src.get(name).and_then(Value::as_bool) == Some(true);

    if flag("x-kubernetes-int-or-string") {
        out.remove("type");
        out.entry("anyOf")
            .or_insert_with(|| json!([{"type": "integer"}, {"type": "string"}]));
    }
    if flag("nullable") {
        if let Some(t) = out.get("type").and_then(Value::as_str).map(str::to_string) {
            out.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(values)) = out.get_mut("enum")
            && !values.contains(&Value::Null)
        {
            values.push(Value::Null);
        }
    }
    if out.get("type").and_then(Value::as_str) == Some("integer") {
        let range = match src.get("format").and_then(Value::as_str) {
            Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            Some("int64") => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        if let Some((lo, hi)) = range {
            out.entry("minimum").or_insert_with(|| json!(lo));
            out.entry("maximum").or_insert_with(|| json!(hi));
        }
    }
    if src.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    let is_object = src.get("type").and_then(Value::as_str) == Some("object");
    if !in_junctor
        && is_object
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        if flag("x-kubernetes-embedded-resource")
            && let Some(Value::Object(props)) = out.get_mut("properties")
        {
            props
                .entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            props
                .entry("kind")
                .or_insert_with(|| json!({"type": "string"}));
            props.entry("metadata").or_insert_with(object_meta);
        }
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// What the API server checks of every object's `metadata` (`ObjectMeta`),
/// for the fields a manifest sets; the rest is left open.
fn object_meta() -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 253},
            "generateName": {"type": "string"},
            "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
            "labels": string_map,
            "annotations": string_map,
            "finalizers": {"type": "array", "items": {"type": "string"}},
        },
        "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
    })
}

/// The `(apiVersion, kind)` and translated schema of each served version of
/// the CRD `doc`.
fn crd_versions(doc: &Value) -> Result<Vec<(Key, Value)>, String> {
    let spec = doc.get("spec").ok_or("a CRD without `spec`")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("a CRD without `spec.group`")?;
    let kind = spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .ok_or("a CRD without `spec.names.kind`")?;
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the CRD of {kind} has no `spec.versions`"))?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a version of {kind} without a name"))?;
        let raw = v
            .pointer("/schema/openAPIV3Schema")
            .ok_or_else(|| format!("{kind} {name} has no `schema.openAPIV3Schema`"))?;
        let mut schema = to_json_schema(raw);
        if let Some(Value::Object(props)) = schema.get_mut("properties") {
            props.insert("metadata".into(), object_meta());
        }
        if let Some(root) = schema.as_object_mut() {
            let required = root.entry("required").or_insert_with(|| json!([]));
            if let Value::Array(required) = required {
                for field in ["apiVersion", "kind", "metadata"] {
                    if !required.iter().any(|r| r == field) {
                        required.push(json!(field));
                    }
                }
            }
        }
        out.push(((format!("{group}/{name}"), kind.to_string()), schema));
    }
    Ok(out)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in read {
        out.push(
            entry
                .map_err(|e| format!("reading {}: {e}", dir.display()))?
                .path(),
        );
    }
    out.sort();
    Ok(out)
}
