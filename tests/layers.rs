//! The library's modules form layers that import one way: a file may use what its own layer
//! or a lower one defines, never a higher one, and the files of one layer never import each
//! other in a circle. This test reads every `crate::…`, `super::…` and `self::…` path in
//! `src/` (in `use` lines and inline in code, comments and strings left out), maps each file
//! to its layer by [`LAYERS`], and fails on an import against the order or on a cycle
//! between files (printing the cycle). docs/ARCHITECTURE.md ("Layers") explains the order.
//!
//! The binary (`src/main.rs`, `src/cli/`) is a separate crate above all layers: the compiler
//! already keeps the library from importing it. `src/lib.rs` only declares modules and
//! re-exports; the test checks that too, so no code hides there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// The layers, lowest first. An entry ending in `/` takes every file of that folder.
const LAYERS: &[(&str, &[&str])] = &[
    // Plain types and helpers: no error type, no repository. (`leftover.rs`, the names of
    // temp files, arrives with the clone/get temp-file work.)
    (
        "base",
        &[
            "id.rs",
            "object.rs",
            "ticket.rs",
            "progress.rs",
            "text.rs",
            "leftover.rs",
            "person.rs",
        ],
    ),
    // Signed things, each with its own error type.
    ("trust", &["trust/", "catalog.rs"]),
    // The core error type: it wraps the errors of trust and tickets, so it sits above them.
    ("error", &["error.rs"]),
    // What lies on disk.
    ("storage", &["store/", "db.rs", "keys.rs", "worktree.rs"]),
    // A repository, and its plain settings.
    ("repo", &["repo.rs", "config.rs"]),
    // Operations, the graph walk and what a repository publishes.
    ("ops", &["ops/"]),
    // Peers and people: iroh sync, the registry, the HTTP gateway.
    ("net", &["net/", "gateway/"]),
    // The daemon that `lode serve` runs: the server, the gateway and the mirror followers.
    ("daemon", &["daemon.rs"]),
];

/// The layer index of a file (path relative to `src/`, with `/`), if the table names it.
fn layer_of(file: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, entries)| {
        entries.iter().any(|e| {
            if e.ends_with('/') {
                file.starts_with(e)
            } else {
                file == *e
            }
        })
    })
}

/// Files that are not layered: the crate root and the binary.
fn is_outside_layers(file: &str) -> bool {
    file == "lib.rs" || file == "main.rs" || file.starts_with("cli/")
}

/// The module path of a file: `ops/graph.rs` is `ops::graph`, `ops/mod.rs` is `ops`.
fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut segs: Vec<String> = stem.split('/').map(str::to_string).collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs
}

/// Blanks out comments, string literals and char literals (newlines kept, so line numbers
/// hold): a path named in a doc comment or an error message is not an import.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (!prev_ident || (i == 1 || !ident(c[i - 2])) && c[i - 1] == 'b')
            && matches!(c.get(i + 1), Some('"') | Some('#'))
        {
            // A raw string r"…", r#"…"#, br"…".
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push('r');
            for _ in i + 1..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or else a lifetime ('a), left as it is.
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                for _ in i..=j.min(c.len() - 1) {
                    out.push(' ');
                }
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// One import: the file and line it is on, and the path as written.
#[derive(Debug, Clone)]
struct Use {
    line: usize,
    path: String,
}

/// Reads a path at `s[*pos..]`: segments joined by `::`, possibly ending in a `{…}` group
/// (a use tree). Returns every full path it names, as segments.
fn read_tree(s: &[char], pos: &mut usize) -> Vec<Vec<String>> {
    let skip_ws = |pos: &mut usize| {
        while *pos < s.len() && s[*pos].is_whitespace() {
            *pos += 1;
        }
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        skip_ws(pos);
        if s.get(*pos) == Some(&'{') {
            *pos += 1;
            let mut out = Vec::new();
            loop {
                skip_ws(pos);
                match s.get(*pos) {
                    None => return out,
                    Some('}') => {
                        *pos += 1;
                        return out;
                    }
                    Some(',') => *pos += 1,
                    _ => {
                        let before = *pos;
                        for sub in read_tree(s, pos) {
                            let mut p = prefix.clone();
                            p.extend(sub);
                            if p.len() > 1 && p.last().is_some_and(|l| l == "self") {
                                p.pop();
                            }
                            out.push(p);
                        }
                        if *pos == before {
                            *pos += 1;
                        }
                    }
                }
            }
        }
        let start = *pos;
        while *pos < s.len() && (s[*pos].is_alphanumeric() || s[*pos] == '_' || s[*pos] == '*') {
            *pos += 1;
        }
        if *pos == start {
            return vec![prefix];
        }
        let seg: String = s[start..*pos].iter().collect();
        if seg != "self" || prefix.is_empty() {
            prefix.push(seg);
        }
        let mut look = *pos;
        while look < s.len() && s[look].is_whitespace() {
            look += 1;
        }
        if s.get(look) == Some(&':') && s.get(look + 1) == Some(&':') {
            *pos = look + 2;
        } else {
            // `as NAME`, `;`, `(`, `<`...: the path ends here.
            return vec![prefix];
        }
    }
}

/// Every module-relative path a file names, resolved to absolute module paths (segments from
/// the crate root), with the line and the text as written.
fn paths_in(file: &str, src: &str, children: &BTreeSet<String>) -> Vec<(Vec<String>, Use)> {
    let code = code_only(src);
    let chars: Vec<char> = code.chars().collect();
    let module = module_of(file);
    // Inline modules (`mod tests {`), by indentation: `super` inside one is the file itself.
    let mut line_module: Vec<Vec<String>> = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in code.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if let Some((ind, _)) = stack.last() {
            if t == "}" && indent == *ind {
                line_module.push(
                    module
                        .iter()
                        .cloned()
                        .chain(stack.iter().map(|(_, n)| n.clone()))
                        .collect(),
                );
                stack.pop();
                continue;
            }
        }
        line_module.push(
            module
                .iter()
                .cloned()
                .chain(stack.iter().map(|(_, n)| n.clone()))
                .collect(),
        );
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(rest) = t.strip_prefix("mod ") {
            if let Some(name) = rest.strip_suffix(" {").or_else(|| rest.strip_suffix('{')) {
                stack.push((indent, name.trim().to_string()));
            }
        }
    }
    let mut line_starts = vec![0];
    for (i, ch) in chars.iter().enumerate() {
        if *ch == '\n' {
            line_starts.push(i + 1);
        }
    }
    let line_at = |pos: usize| line_starts.partition_point(|&s| s <= pos);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        if !boundary || !(chars[i].is_alphabetic() || chars[i] == '_') {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let word: String = chars[start..j].iter().collect();
        let followed = chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':');
        let root = matches!(word.as_str(), "crate" | "super" | "self") || children.contains(&word);
        if !followed || !root {
            i = j;
            continue;
        }
        let line = line_at(start);
        let here = line_module
            .get(line - 1)
            .cloned()
            .unwrap_or_else(|| module.clone());
        let mut pos = start;
        for segs in read_tree(&chars, &mut pos) {
            let text = segs.join("::");
            let mut abs: Vec<String> = Vec::new();
            let mut rest = segs.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                Some("self") => {
                    abs = here.clone();
                    rest = &rest[1..];
                }
                Some("super") => {
                    abs = here.clone();
                    while rest.first().is_some_and(|s| s == "super") {
                        abs.pop();
                        rest = &rest[1..];
                    }
                }
                _ => abs = module.clone(), // a child module of this mod.rs
            }
            abs.extend(rest.iter().cloned());
            out.push((abs, Use { line, path: text }));
        }
        i = pos.max(j);
    }
    out
}

/// Imports between files: file -> file -> the imports that make the edge.
type Edges = BTreeMap<String, BTreeMap<String, Vec<Use>>>;

/// Checks a source tree (path relative to `src/` → text): returns what is wrong, and the
/// import graph it read.
fn check(files: &BTreeMap<String, String>) -> (Vec<String>, Edges) {
    let mut problems = Vec::new();
    let modules: BTreeMap<Vec<String>, String> = files
        .keys()
        .filter(|f| !is_outside_layers(f))
        .map(|f| (module_of(f), f.clone()))
        .collect();
    // Names the crate root re-exports (`pub use error::{Error, Result};`), to their module.
    let mut root_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(lib) = files.get("lib.rs") {
        for (n, line) in code_only(lib).lines().enumerate() {
            let t = line.trim();
            if t.is_empty()
                || t.starts_with("#![")
                || (t.starts_with("pub mod ") && t.ends_with(';'))
            {
                continue;
            }
            if let Some(rest) = t.strip_prefix("pub use ") {
                let chars: Vec<char> = rest.chars().collect();
                for segs in read_tree(&chars, &mut 0) {
                    if let Some((name, module)) = segs.split_last() {
                        root_names.insert(name.clone(), module.to_vec());
                    }
                }
                continue;
            }
            problems.push(format!(
                "src/lib.rs:{}: `{t}`: the crate root only declares modules and re-exports; put code in a module of its layer",
                n + 1
            ));
        }
    }
    for f in files.keys().filter(|f| !is_outside_layers(f)) {
        if layer_of(f).is_none() {
            problems.push(format!(
                "src/{f} has no layer: add it to LAYERS in tests/layers.rs (and to \"Layers\" in docs/ARCHITECTURE.md)"
            ));
        }
    }
    // file -> file -> the imports that make the edge
    let mut edges = Edges::new();
    for (f, src) in files.iter().filter(|(f, _)| !is_outside_layers(f)) {
        let children: BTreeSet<String> = if f.ends_with("mod.rs") {
            code_only(src)
                .lines()
                .filter_map(|l| {
                    let t = l.trim();
                    let t = t
                        .strip_prefix("pub(crate) ")
                        .or_else(|| t.strip_prefix("pub "))
                        .unwrap_or(t);
                    t.strip_prefix("mod ")?
                        .strip_suffix(';')
                        .map(str::to_string)
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        for (abs, u) in paths_in(f, src, &children) {
            let target = (1..=abs.len())
                .rev()
                .find_map(|k| modules.get(&abs[..k]))
                .cloned()
                .or_else(|| {
                    let m = root_names.get(abs.first()?)?;
                    modules.get(m).cloned()
                });
            let Some(target) = target else { continue };
            if &target != f {
                edges
                    .entry(f.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .push(u);
            }
        }
    }
    let name = |f: &str| layer_of(f).map_or("?", |l| LAYERS[l].0);
    for (from, tos) in &edges {
        for (to, uses) in tos {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                if b > a {
                    for u in uses {
                        problems.push(format!(
                            "src/{from}:{}: `{}` points up: src/{from} is in layer {}, src/{to} in layer {}, which is above it (order, lowest first: {})",
                            u.line,
                            u.path,
                            name(from),
                            name(to),
                            LAYERS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" → ")
                        ));
                    }
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        let mut steps = Vec::new();
        for w in cycle.windows(2) {
            let u = &edges[&w[0]][&w[1]][0];
            steps.push(format!("  src/{}:{} uses `{}`", w[0], u.line, u.path));
        }
        problems.push(format!(
            "import cycle: {}\n{}",
            cycle
                .iter()
                .map(|f| format!("src/{f}"))
                .collect::<Vec<_>>()
                .join(" → "),
            steps.join("\n")
        ));
    }
    (problems, edges)
}

/// Cycles between files: for each file, the shortest way back to itself, as a closed path
/// (first = last); a cycle met again from another of its files is listed once.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut seen: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    let mut found = Vec::new();
    for start in edges.keys() {
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        let mut last = None;
        'search: while let Some(n) = queue.pop_front() {
            for m in edges.get(&n).into_iter().flat_map(BTreeMap::keys) {
                if m == start {
                    last = Some(n.clone());
                    break 'search;
                }
                if !prev.contains_key(m) {
                    prev.insert(m.clone(), n.clone());
                    queue.push_back(m.clone());
                }
            }
        }
        let Some(mut n) = last else { continue };
        let mut cycle = vec![start.clone()];
        while n != *start {
            cycle.push(n.clone());
            n = prev[&n].clone();
        }
        cycle.push(start.clone());
        cycle.reverse();
        if seen.insert(cycle.iter().cloned().collect()) {
            found.push(cycle);
        }
    }
    found
}

fn read_src(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let rel_name = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            read_src(&path, &rel_name, out);
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.insert(rel_name, text);
        }
    }
}

#[test]
fn layers_go_one_way() {
    let mut files = BTreeMap::new();
    read_src(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut files,
    );
    assert!(
        files.contains_key("ops/graph.rs") && files.len() > 20,
        "src/ not read"
    );
    let (problems, edges) = check(&files);
    // The reader sees imports of every kind: a `use` line, an inline path, `super::` and a
    // name the crate root re-exports.
    for (from, to) in [
        ("net/serve/state.rs", "ops/access.rs"),
        ("ops/sealed/seal.rs", "ops/graph.rs"),
        ("ops/add.rs", "ops/mod.rs"),
        ("db.rs", "id.rs"),
    ] {
        assert!(
            edges.get(from).is_some_and(|t| t.contains_key(to)),
            "src/{from} -> src/{to} not seen: the import reader is broken"
        );
    }
    assert!(
        problems.is_empty(),
        "the layers of src/ are broken ({} problems):\n{}\n\nLayers, lowest first: {}",
        problems.len(),
        problems.join("\n"),
        LAYERS
            .iter()
            .map(|(n, f)| format!("{n} [{}]", f.join(", ")))
            .collect::<Vec<_>>()
            .join(" → ")
    );
}

/// The checker itself finds an upward import (also one written inline, in code), a cycle,
/// and a file the table does not name; and it ignores paths in comments and strings.
#[test]
fn checker_finds_what_it_must() {
    let files: BTreeMap<String, String> = [
        ("lib.rs", "pub mod id;\npub mod ops;\npub mod net;\npub use id::ObjectId;\n"),
        ("id.rs", "// crate::net::fetch in a comment\nconst A: &str = \"crate::ops::x\";\npub struct ObjectId;\n"),
        ("ops/mod.rs", "pub mod a;\npub mod b;\nfn f() { a::g() }\n"),
        ("ops/a.rs", "use super::b::h;\nfn g() { crate::net::serve::run(); }\n"),
        ("ops/b.rs", "use crate::{ObjectId, ops::{a::g, self}};\n"),
        ("net/serve.rs", "use crate::id::ObjectId;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
        ("net/mod.rs", "pub mod serve;\n"),
        ("extra.rs", "use crate::id::ObjectId;\n"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let problems = check(&files).0.join("\n");
    assert!(
        problems.contains("src/ops/a.rs:2: `crate::net::serve::run` points up"),
        "{problems}"
    );
    assert!(
        problems.contains("import cycle: src/ops/a.rs → src/ops/b.rs → src/ops/a.rs"),
        "{problems}"
    );
    assert!(problems.contains("src/extra.rs has no layer"), "{problems}");
    assert!(!problems.contains("src/id.rs"), "{problems}");
    assert!(!problems.contains("src/net/serve.rs:"), "{problems}");
}
