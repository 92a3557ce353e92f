//! The modules form layers: no module imports one that imports it back. Read from the
//! sources: each `use` and each inline `crate::…` or `super::…` path is an edge from the
//! module that writes it to the module it names. A parent and its own child may name each
//! other (a parent declares and re-exports its children); between siblings, and between
//! top-level modules, every edge points one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every source file and its module path (`src/agents/work.rs` is `agents::work`).
/// Test-only files are left out: their imports do not shape the service.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let last = parts.last().cloned().unwrap_or_default();
        if last == "main" || last == "tests" || last.ends_with("_tests") || last == "fixture" {
            continue;
        }
        if last == "mod" || last == "lib" {
            parts.pop();
        }
        out.insert(parts, file);
    }
    out
}

/// The code of a file without its `#[cfg(test)] mod tests` block, which sits at the end.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read a source file");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `a::{b::{c, d}, e}` as `a::b::c`, `a::b::d`, `a::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len().saturating_sub(1)];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |s| format!("{prefix}{s}")))
        .collect()
}

/// Every path a file names that starts at `crate`, `super` or `self`.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` trees, which may span lines and nest braces.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let at_start = i == 0 || rest[..i].ends_with(['\n', ' ', '(', '{']);
        let tail = &rest[i + 4..];
        let Some(end) = tail.find(';') else { break };
        if at_start
            && ["crate", "super", "self"]
                .iter()
                .any(|w| tail.starts_with(w))
        {
            out.extend(expand(&tail[..end]));
        }
        rest = &tail[end..];
    }
    // Paths written inline, in code.
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let path: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(path);
    }
    out
}

/// The module a path names: the longest known module it starts with.
fn resolve(from: &Module, path: &str, known: &BTreeSet<Module>) -> Module {
    let words: Vec<&str> = path.split("::").filter(|w| !w.is_empty()).collect();
    let (mut base, skip): (Module, usize) = match words.first().copied() {
        Some("crate") => (Vec::new(), 1),
        Some("self") => (from.clone(), 1),
        Some("super") => {
            // `super` of `a::b`, written in `a/b.rs` or in `a/b/mod.rs`, is `a`.
            let mut b = from.clone();
            b.pop();
            let mut n = 1;
            while words.get(n) == Some(&"super") {
                b.pop();
                n += 1;
            }
            (b, n)
        }
        _ => return from.clone(),
    };
    let mut found = base.clone();
    for w in &words[skip..] {
        base.push(w.to_string());
        if known.contains(&base) {
            found = base.clone();
        } else {
            break;
        }
    }
    found
}

/// The sibling modules an edge joins, unless one module contains the other.
fn siblings(a: &Module, b: &Module) -> Option<(Module, Module)> {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[..=common].to_vec(), b[..=common].to_vec()))
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The cycles of a graph, each as the modules on it.
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        path: &mut Vec<Module>,
        found: &mut Vec<Vec<Module>>,
    ) {
        state.insert(node.clone(), 1);
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    found.push(path[start..].to_vec());
                }
                0 => visit(next, edges, state, path, found),
                _ => {}
            }
        }
        path.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            visit(node, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    assert!(known.contains(&vec!["orchestrator".to_string(), "engine".to_string()]));
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    let mut count = 0;
    for (module, file) in &modules {
        for path in paths(&code(file)) {
            let target = resolve(module, &path, &known);
            if let Some((a, b)) = siblings(module, &target) {
                count += 1;
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    assert!(count > 100, "the sources were read: {count} edges");
    let found: Vec<String> = cycles(&edges)
        .iter()
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(name).collect();
            names.push(name(&c[0]));
            names.join(" → ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_its_edges() {
    assert_eq!(
        expand("crate::{a::{b, c}, d}"),
        vec!["crate::a::b", "crate::a::c", "crate::d"]
    );
    let m = |s: &str| -> Module { s.split("::").map(str::to_string).collect() };
    let known: BTreeSet<Module> = [m("a"), m("a::b"), m("a::c"), m("d")].into();
    assert_eq!(resolve(&m("a::b"), "super::c::Thing", &known), m("a::c"));
    assert_eq!(resolve(&m("a::b"), "crate::d::x::Y", &known), m("d"));
    assert_eq!(
        siblings(&m("a::b"), &m("a")),
        None,
        "a child may name its parent"
    );
    assert_eq!(siblings(&m("a::b"), &m("d")), Some((m("a"), m("d"))));
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    edges.entry(m("a")).or_default().insert(m("d"));
    edges.entry(m("d")).or_default().insert(m("a"));
    assert_eq!(cycles(&edges).len(), 1);
}
