//! Layers point one way: a module never imports from a module that imports
//! it. The test reads `src/**/*.rs`, collects the `crate::<module>` paths of
//! each top-level module (outside comments, doc comments, string literals and
//! `#[cfg(test)]` code; `crate::Error` and the other names `lib.rs`
//! re-exports count as their module), and fails naming the cycle when the
//! top-level modules import each other round.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the modules it imports → where (first `file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// `text` with comments and string and character literals blanked out
/// (newlines kept, so that line numbers stay).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    // Blank chars[from..to], keeping newlines.
    let blank = |out: &mut String, from: usize, to: usize| {
        out.extend(c[from..to].iter().filter(|&&ch| ch == '\n'));
    };
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '/' if next == Some('/') => {
                let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
                i = end;
            }
            '/' if next == Some('*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < c.len() && depth > 0 {
                    if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 1;
                    } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 1;
                    }
                    j += 1;
                }
                blank(&mut out, i, j.min(c.len()));
                i = j;
            }
            '"' => {
                let mut j = i + 1;
                while j < c.len() && c[j] != '"' {
                    j += if c[j] == '\\' { 2 } else { 1 };
                }
                blank(&mut out, i, (j + 1).min(c.len()));
                out.push(' ');
                i = j + 1;
            }
            // A raw string `r"…"`, `r#"…"#` (not a raw identifier `r#type`).
            'r' if i == 0
                || !ident(c[i - 1])
                || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))) =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
                if c.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let body_start = i + 2 + hashes;
                let rest: String = c[body_start..].iter().collect();
                let end = rest
                    .find(&close)
                    .map(|at| body_start + rest[..at].chars().count() + close.chars().count())
                    .unwrap_or(c.len());
                blank(&mut out, i, end);
                out.push(' ');
                i = end;
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{1F600}'), or a lifetime.
                let end = if next == Some('\\') {
                    (i + 3..c.len()).find(|&j| c[j] == '\'').map(|j| j + 1)
                } else if c.get(i + 2) == Some(&'\'') {
                    Some(i + 3)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        out.push(' ');
                        i = end;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// `code` without the items under `#[cfg(test)]` (newlines kept), and the
/// names of the `#[cfg(test)] mod NAME;` files it declares.
fn without_tests(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // The item ends at its first `;` or at the `}` that closes its first `{`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (j, ch) in item.char_indices().skip(MARK.len()) {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        let removed = &item[..end];
        let words: Vec<&str> = removed[MARK.len()..]
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if removed.ends_with(';')
            && let Some(m) = words.iter().position(|w| *w == "mod")
            && let Some(name) = words.get(m + 1)
        {
            test_mods.push(name.to_string());
        }
        out.extend(removed.chars().filter(|&ch| ch == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// The first segment of each path a `crate::` in `code` names, with its line:
/// `crate::a::B` gives `a`, `crate::{a::B, C}` gives `a` and `C`.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        if code[..start].chars().next_back().is_some_and(ident) {
            continue; // e.g. `my_crate::`
        }
        let line = code[..start].matches('\n').count() + 1;
        let after = &code[from..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level entries of the group, up to its closing brace.
            let (mut depth, mut entry, mut entries) = (0usize, String::new(), Vec::new());
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        entries.push(std::mem::take(&mut entry));
                        continue;
                    }
                    _ => {}
                }
                entry.push(ch);
            }
            entries.push(entry);
            for e in entries {
                let name: String = e.trim_start().chars().take_while(|&ch| ident(ch)).collect();
                if !name.is_empty() {
                    found.push((name, line));
                }
            }
        } else {
            let name: String = after.chars().take_while(|&ch| ident(ch)).collect();
            if !name.is_empty() {
                found.push((name, line));
            }
        }
    }
    found
}

/// The names `lib.rs` re-exports from a module of the crate
/// (`pub use error::{Error, Result};`) → that module.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let mut depth = 0usize;
    let mut statement_start = None;
    for (j, ch) in lib.char_indices() {
        match ch {
            '{' if statement_start.is_none() => depth += 1,
            '}' if statement_start.is_none() => depth = depth.saturating_sub(1),
            'p' if depth == 0 && statement_start.is_none() && lib[j..].starts_with("pub use ") => {
                statement_start = Some(j + "pub use ".len());
            }
            ';' => {
                if let Some(s) = statement_start.take() {
                    let stmt = &lib[s..j];
                    let Some((module, rest)) = stmt.trim().split_once("::") else {
                        continue;
                    };
                    if !modules.contains(module) {
                        continue;
                    }
                    let words: Vec<&str> = rest
                        .split(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == ':'))
                        .filter(|w| !w.is_empty())
                        .collect();
                    for w in words {
                        let last = w.rsplit("::").next().unwrap_or(w);
                        if !w.ends_with("::") && !matches!(last, "as" | "self" | "") {
                            names.insert(last.to_string(), module.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// A `.rs` file's module path under `src`, e.g. `report/tests` for
/// `report/tests.rs` and `cluster/local` for `cluster/local/mod.rs`.
fn module_path(rel: &str) -> &str {
    let path = rel.strip_suffix(".rs").unwrap_or(rel);
    path.strip_suffix("/mod").unwrap_or(path)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The import graph of the top-level modules of the crate under `root`
/// (its `src`), from files given as (path relative to `root`, text).
fn graph(files: &[(String, String)]) -> Graph {
    let modules: BTreeSet<String> = files
        .iter()
        .filter(|(rel, _)| rel != "lib.rs")
        .map(|(rel, _)| module_path(rel).split('/').next().unwrap_or("").to_string())
        .collect();
    let mut code = BTreeMap::new();
    let mut test_only = Vec::new();
    for (rel, text) in files {
        let (c, test_mods) = without_tests(&code_only(text));
        let path = module_path(rel);
        // A module's children are in the folder of its name.
        let dir = if rel == "lib.rs" { "" } else { path };
        for m in test_mods {
            test_only.push(if dir.is_empty() {
                m
            } else {
                format!("{dir}/{m}")
            });
        }
        code.insert(rel.clone(), c);
    }
    let lib = code.get("lib.rs").map(String::as_str).unwrap_or("");
    let reexports = root_reexports(lib, &modules);
    let mut graph = Graph::new();
    for (rel, c) in &code {
        let path = module_path(rel);
        let Some(top) = path.split('/').next().filter(|_| rel != "lib.rs") else {
            continue;
        };
        if test_only
            .iter()
            .any(|t| path == t || path.starts_with(&format!("{t}/")))
            || c.contains("#![cfg(test)]")
        {
            continue;
        }
        let edges = graph.entry(top.to_string()).or_default();
        for (name, line) in crate_paths(c) {
            let target = if modules.contains(&name) {
                name
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue;
            };
            if target != top {
                edges
                    .entry(target)
                    .or_insert_with(|| format!("src/{rel}:{line}"));
            }
        }
    }
    graph
}

/// The cycles of `graph`: for each set of modules that import each other
/// round (a strongly connected component of more than one), one cycle
/// through it, as `a → b → a`, with where each import is.
fn cycles(graph: &Graph) -> Vec<String> {
    // Tarjan's algorithm.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let mut out = Vec::new();
    for component in s.components.iter().filter(|c| c.len() > 1) {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        // The shortest way from the first member back to itself, inside the
        // component (breadth first).
        let start = *members.first().expect("not empty");
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(v) = queue.pop_front() {
            for w in graph[v].keys().map(String::as_str) {
                if !members.contains(w) || came_from.contains_key(w) {
                    continue;
                }
                came_from.insert(w, v);
                if w == start {
                    break 'search;
                }
                queue.push_back(w);
            }
        }
        let mut path = vec![start];
        let mut at = came_from[start];
        while at != start {
            path.push(at);
            at = came_from[at];
        }
        path.push(start);
        path.reverse();
        let steps: Vec<String> = path
            .windows(2)
            .map(|p| format!("  {} → {} ({})", p[0], p[1], graph[p[0]][p[1]]))
            .collect();
        out.push(format!(
            "{} (all of {:?} import each other round):\n{}",
            path.join(" → "),
            members,
            steps.join("\n")
        ));
    }
    out
}

fn crate_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&f).expect("readable"))
        })
        .collect()
}

#[test]
fn the_top_level_modules_import_each_other_one_way() {
    let files = crate_sources();
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let g = graph(&files);
    assert!(
        g["cluster"].contains_key("fault") && g["experiment"].contains_key("cluster"),
        "the scan finds imports: {g:#?}"
    );
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "modules that import each other (STYLE.md: layers point one way; move the code \
         that needs both to the module above them):\n{}",
        found.join("\n")
    );
}

/// Below the seam: `fault` says what a fault is and knows no target; the
/// report, the verdict and the measurements know neither the pipeline nor
/// the runs.
#[test]
fn the_lower_layers_do_not_import_the_upper_ones() {
    let g = graph(&crate_sources());
    let forbidden = [
        (
            "fault",
            &["cluster", "experiment", "report", "runs", "harness"][..],
        ),
        (
            "report",
            &["experiment", "runs", "harness", "scenario", "cluster"],
        ),
        ("slo", &["report", "experiment", "runs", "harness"]),
        (
            "verify",
            &["slo", "report", "experiment", "runs", "harness"],
        ),
        ("probe", &["verify", "slo", "report", "experiment", "runs"]),
        ("workload", &["report", "experiment", "runs", "harness"]),
        ("experiment", &["runs", "harness", "scenario"]),
        ("runs", &["harness", "scenario"]),
    ];
    let mut wrong = Vec::new();
    for (low, highs) in forbidden {
        for high in highs {
            if let Some(at) = g.get(low).and_then(|e| e.get(*high)) {
                wrong.push(format!("{low} → {high} ({at})"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn comments_strings_and_test_code_are_not_imports() {
    let src = r##"
//! [`x`](crate::doc_only)
use crate::{a::B, c, D, e::{f, g}};
/* crate::block_comment /* nested */ crate::still_comment */
fn f<'a>(x: &'a str) -> char { let _ = "crate::in_string"; let _ = r#"crate::raw"#; '{' }
type T = crate::h::T; // crate::trailing
#[cfg(test)]
mod tests { use crate::test_only; fn x() { { crate::deep; } } }
#[cfg(test)]
mod more;
fn after() { crate::i::j(); }
"##;
    let (code, test_mods) = without_tests(&code_only(src));
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a", "c", "D", "e", "h", "i"]);
    assert_eq!(test_mods, ["more"]);
    assert_eq!(code.lines().count(), src.lines().count(), "lines are kept");
}

#[test]
fn a_cycle_is_named_with_where_each_import_is() {
    let files = [
        (
            "lib.rs",
            "pub mod a; pub mod b; pub mod c;\npub use c::{Top, Other as O};",
        ),
        ("a.rs", "use crate::b::X;"),
        ("b/mod.rs", "mod inner;\n#[cfg(test)]\nmod tests;"),
        ("b/inner.rs", "\n\nfn f() -> crate::Top { todo!() }"),
        ("b/tests.rs", "use crate::a::Y;"),
        ("c.rs", "use crate::a::Z;"),
    ]
    .map(|(p, t)| (p.to_string(), t.to_string()));
    let g = graph(&files);
    assert!(!g["b"].contains_key("a"), "b's tests are not b: {g:?}");
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("a → b → c → a"), "{}", found[0]);
    assert!(
        found[0].contains("b → c (src/b/inner.rs:3)"),
        "{}",
        found[0]
    );
    let acyclic = [("lib.rs", ""), ("a.rs", "use crate::b::X;"), ("b.rs", "")]
        .map(|(p, t)| (p.to_string(), t.to_string()));
    assert!(cycles(&graph(&acyclic)).is_empty());
}
