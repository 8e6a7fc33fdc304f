//! Architecture guard: the gateway's source tree keeps its layout and its
//! import rules.
//!
//! It reads every file under `gateway/src` (except `main.rs`, which uses
//! `gateway::…`), extracts each `crate::`, `super::`, `self::` and child-module
//! path outside comments, string literals and the trailing `mod tests`,
//! resolves it to the file of the deepest module it names, and fails on:
//! import cycles between files, a folder importing a layer above it (see
//! [`LAYERS`]), more than [`MAX_TOP_LEVEL_ENTRIES`] entries in `src/`, and a
//! folder whose `mod.rs` does not say what lives there and what it must not
//! touch. Cycles and upward imports make a module impossible to read, test or
//! move on its own; this test keeps them from coming back one `use` at a time.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// The crate's source root.
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The layers: each top-level folder and the top-level folders its files may
/// import (itself included), lowest first. Top-level files (`lib.rs`,
/// `pipeline.rs`, `error.rs`, `pages.rs`, …) sit above every folder: they may
/// import anything, and no file in a folder may import them. A new folder
/// fails the test until it is placed here, with its allowed imports.
const LAYERS: &[(&str, &[&str])] = &[
    ("config", &["config"]),
    ("ops", &["config", "ops"]),
    ("proxy", &["config", "ops", "proxy"]),
    ("store", &["config", "ops", "store"]),
    ("auth", &["config", "ops", "store", "auth"]),
    ("events", &["config", "ops", "store", "auth", "events"]),
    (
        "front",
        &["config", "ops", "proxy", "store", "auth", "front"],
    ),
];

/// Most files + folders directly in `src/`; beyond it, group files in a folder.
const MAX_TOP_LEVEL_ENTRIES: usize = 12;

/// Fewest file-to-file edges in the real tree: fewer means a broken parser
/// that finds nothing, not clean code.
const MIN_EDGES: usize = 30;

/// `(from, to)` file pair → the paths written in `from` that resolve to `to`.
type Edges = BTreeMap<(String, String), Vec<String>>;

#[test]
fn gateway_src_keeps_its_layout() {
    let root = Path::new(SRC);
    let mut violations = check(root);
    violations.extend(vacuity(&scan(root)));
    assert!(
        violations.is_empty(),
        "gateway/src breaks its layout ({} problems):\n\n{}\n",
        violations.len(),
        violations.join("\n")
    );
}

/// Every layout violation in the source tree at `root`.
fn check(root: &Path) -> Vec<String> {
    let edges = scan(root);
    let (_, folders) = list(root);
    let mut violations = cycles(&edges);
    violations.extend(layer_violations(&edges, &folders));
    violations.extend(too_many_entries(root));
    violations.extend(undocumented_folders(root, &folders));
    violations
}

/// The file-to-file import graph of the tree at `root`.
fn scan(root: &Path) -> Edges {
    let (files, _) = list(root);
    let files: Vec<String> = files.into_iter().filter(|f| f != "main.rs").collect();
    let modules = files.iter().map(|f| (module_path(f), f.clone())).collect();
    let mut edges = Edges::new();
    for file in &files {
        let source = fs::read_to_string(root.join(file)).expect("source file is UTF-8");
        for (written, target) in references(&source, &module_path(file)) {
            match resolve(&modules, &target) {
                Some(to) if to != file => {
                    let pair = (file.clone(), to.clone());
                    edges.entry(pair).or_default().push(written);
                }
                _ => {}
            }
        }
    }
    edges
}

/// All `.rs` files and all folders below `root`, as sorted relative paths.
fn list(root: &Path) -> (Vec<String>, Vec<String>) {
    fn walk(dir: &Path, prefix: &str, files: &mut Vec<String>, dirs: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("source folder is readable") {
            let path = entry.expect("folder entry is readable").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let rel = format!("{prefix}{}", name.unwrap_or_default());
            if path.is_dir() {
                walk(&path, &format!("{rel}/"), files, dirs);
                dirs.push(rel);
            } else if rel.ends_with(".rs") {
                files.push(rel);
            }
        }
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(root, "", &mut files, &mut dirs);
    files.sort();
    dirs.sort();
    (files, dirs)
}

/// `lib.rs` → crate root, `x/mod.rs` → `x`, `x/y.rs` and `x/y/mod.rs` → `x::y`.
fn module_path(file: &str) -> Vec<String> {
    let path = file.trim_end_matches(".rs");
    let path = path.strip_suffix("/mod").unwrap_or(path);
    match path {
        "lib" => Vec::new(),
        _ => path.split('/').map(String::from).collect(),
    }
}

/// The file of the deepest module on the way from the crate root to `target`.
fn resolve<'m>(
    modules: &'m BTreeMap<Vec<String>, String>,
    target: &[String],
) -> Option<&'m String> {
    (0..=target.len())
        .map_while(|depth| modules.get(&target[..depth]))
        .last()
}

/// The crate-internal paths in `source` (a file of module `module`): each as
/// written, with the absolute module path it names.
fn references(source: &str, module: &[String]) -> Vec<(String, Vec<String>)> {
    let code = code_only(&without_tests(source));
    let tokens = tokens(&code);
    let children = child_modules(&tokens);
    let paths = raw_paths(&tokens).into_iter();
    paths
        .filter_map(|p| Some((p.join("::"), absolute(&p, module, &children)?)))
        .collect()
}

/// `source` up to its test module: a `#[cfg(test)]` line whose next non-empty
/// line is `mod tests`.
fn without_tests(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let opens_tests = |after: &[&str]| {
        let next = after.iter().map(|l| l.trim()).find(|l| !l.is_empty());
        let rest = next.and_then(|l| l.strip_prefix("mod tests"));
        rest.is_some_and(|r| r.trim_start().starts_with(['{', ';']))
    };
    let cut = (0..lines.len())
        .find(|&i| lines[i].trim() == "#[cfg(test)]" && opens_tests(&lines[i + 1..]))
        .unwrap_or(lines.len());
    lines[..cut].join("\n")
}

/// `code` with every comment and every string and char literal replaced by a
/// space, so that neither can contribute a path.
fn code_only(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let past = |from: usize, end: &str| {
        let end: Vec<char> = end.chars().collect();
        let found = (from..chars.len()).find(|&j| chars[j..].starts_with(&end));
        found.map_or(chars.len(), |j| j + end.len())
    };
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        i = match (chars[i], at(i + 1)) {
            ('/', '/') => past(i, "\n"),
            ('/', '*') => past(i + 2, "*/"),
            ('"', _) => string_end(&chars, i),
            ('\'', '\\') => past(i + 3, "'"), // `'\''`, `'\u{7f}'`
            ('\'', _) if at(i + 2) == '\'' => i + 3,
            _ => match raw_string_hashes(&chars, i) {
                Some(n) => past(i + 2 + n, &format!("\"{}", "#".repeat(n))),
                None => {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
            },
        };
        out.push(' ');
    }
    out
}

/// The index just past the (escape-aware) string literal opening at `i`.
fn string_end(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// If a raw string (`r"…"`, `r#"…"#`, `br"…"`) opens at `i`: its `#` count.
fn raw_string_hashes(chars: &[char], i: usize) -> Option<usize> {
    let ident_at = |j: Option<usize>| j.is_some_and(|j| is_ident_char(chars[j]));
    let before = i.checked_sub(1);
    let byte =
        before.is_some_and(|b| chars[b] == 'b') && !ident_at(before.and_then(|b| b.checked_sub(1)));
    let opens = chars[i] == 'r' && (!ident_at(before) || byte);
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    (opens && chars.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(token: &str) -> bool {
    token.starts_with(|c: char| c.is_alphabetic() || c == '_') && token.chars().all(is_ident_char)
}

/// Splits code into identifiers, `::` and single punctuation characters.
fn tokens(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let mut end = start + c.len_utf8();
        if c.is_whitespace() {
            continue;
        } else if is_ident_char(c) {
            while let Some((i, d)) = chars.next_if(|(_, d)| is_ident_char(*d)) {
                end = i + d.len_utf8();
            }
        } else if c == ':' && chars.next_if(|(_, d)| *d == ':').is_some() {
            end += 1;
        }
        out.push(&code[start..end]);
    }
    out
}

/// Modules this file declares: `mod foo;`, `pub mod foo;`, `mod foo { … }`.
fn child_modules<'a>(tokens: &[&'a str]) -> BTreeSet<&'a str> {
    let declares = |w: &&[&str]| w[0] == "mod" && is_ident(w[1]) && ["{", ";"].contains(&w[2]);
    tokens.windows(3).filter(declares).map(|w| w[1]).collect()
}

/// Every path in the code, as segments: each `use` tree expanded to its
/// leaves, and each other `a::b…` chain from its first segment.
fn raw_paths<'a>(tokens: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_chain = (i == 0 || tokens[i - 1] != "::") && is_ident(tokens[i]);
        i = if tokens[i] == "use" {
            use_tree(tokens, i + 1, Vec::new(), &mut out).max(i + 1)
        } else if starts_chain && tokens.get(i + 1) == Some(&"::") {
            use_tree(tokens, i, Vec::new(), &mut out).max(i + 1)
        } else {
            i + 1
        };
    }
    out
}

/// Parses the path or `use` tree at `tokens[i]` below the segments in `path`,
/// pushing each leaf to `out`; returns the index just past it. `self` in a
/// group stands for the group's prefix; `as name` is skipped.
fn use_tree<'a>(
    tokens: &[&'a str],
    mut i: usize,
    mut path: Vec<&'a str>,
    out: &mut Vec<Vec<&'a str>>,
) -> usize {
    loop {
        match tokens.get(i).copied() {
            Some("{") => {
                i += 1;
                while let Some(&token) = tokens.get(i) {
                    i = match token {
                        "}" => return i + 1,
                        "," => i + 1,
                        _ => use_tree(tokens, i, path.clone(), out).max(i + 1),
                    };
                }
                return i;
            }
            Some("*") => {
                out.push(path);
                return i + 1;
            }
            Some("self") if !path.is_empty() => i += 1,
            Some(segment) if is_ident(segment) => {
                path.push(segment);
                i += 1;
            }
            _ => {
                out.extend((!path.is_empty()).then_some(path));
                return i;
            }
        }
        if tokens.get(i) != Some(&"::") {
            out.push(path);
            return i + if tokens.get(i) == Some(&"as") { 2 } else { 0 };
        }
        i += 1;
    }
}

/// The absolute module path `path` names from module `module`, or `None` for
/// a path outside the crate (std, dependencies, local types).
fn absolute(path: &[&str], module: &[String], children: &BTreeSet<&str>) -> Option<Vec<String>> {
    let first = *path.first()?;
    let (base, rest) = match first {
        "crate" => (&[][..], &path[1..]),
        "super" => {
            let ups = path.iter().take_while(|s| **s == "super").count();
            (module.get(..module.len().checked_sub(ups)?)?, &path[ups..])
        }
        "self" => (module, &path[1..]),
        _ if children.contains(first) => (module, path),
        _ => return None,
    };
    let rest = rest.iter().map(|s| s.to_string());
    Some(base.iter().cloned().chain(rest).collect())
}

/// The top-level folder a file lives in; `None` for a top-level file.
fn folder_of(file: &str) -> Option<&str> {
    file.split_once('/').map(|(folder, _)| folder)
}

/// The folders a file in top-level `folder` may import; `None` if unplaced.
fn allowed_imports(folder: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == folder)
        .map(|(_, allowed)| *allowed)
}

/// One message per distinct import cycle: the shortest cycle through each file.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for mut cycle in next.keys().filter_map(|start| shortest_cycle(&next, start)) {
        let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
        cycle.rotate_left(first);
        if seen.insert(cycle.clone()) {
            out.push(describe_cycle(edges, &cycle));
        }
    }
    out
}

/// The shortest chain of imports from `start` back to it (breadth first).
fn shortest_cycle<'a>(
    next: &BTreeMap<&'a str, Vec<&'a str>>,
    start: &'a str,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &succ in next.get(node).into_iter().flatten() {
            if succ == start {
                let mut cycle = vec![node];
                while let Some(&up) = parent.get(cycle[cycle.len() - 1]) {
                    cycle.push(up);
                }
                cycle.reverse();
                return Some(cycle);
            }
            if let Entry::Vacant(unseen) = parent.entry(succ) {
                unseen.insert(node);
                queue.push_back(succ);
            }
        }
    }
    None
}

/// `import cycle: a.rs -> b.rs -> a.rs`, then the paths behind each step.
fn describe_cycle(edges: &Edges, cycle: &[&str]) -> String {
    let closed: Vec<&str> = cycle.iter().chain(&cycle[..1]).copied().collect();
    let mut message = format!("import cycle: {}", closed.join(" -> "));
    for step in closed.windows(2) {
        let paths = edges[&(step[0].to_string(), step[1].to_string())].join("`, `");
        message += &format!("\n    {} -> {} via `{paths}`", step[0], step[1]);
    }
    message
}

/// Top-level folders missing from [`LAYERS`], and imports it does not allow.
fn layer_violations(edges: &Edges, folders: &[String]) -> Vec<String> {
    let unplaced = folders
        .iter()
        .filter(|d| !d.contains('/') && allowed_imports(d).is_none());
    let mut out: Vec<String> = unplaced
        .map(|d| {
            format!(
                "layer: folder `{d}/` is not in the LAYERS table of tests/integration/layout.rs; \
                 add it there with the folders its files may import"
            )
        })
        .collect();
    for ((from, to), paths) in edges {
        let Some(folder) = folder_of(from) else {
            continue;
        };
        let Some(allowed) = allowed_imports(folder) else {
            continue;
        };
        let target = folder_of(to);
        if !target.is_some_and(|t| allowed.contains(&t)) {
            let what = target.map_or("a top-level file".into(), |t| format!("layer `{t}`"));
            out.push(format!(
                "layer: {from} imports {to} ({what}) via `{}`; \
                 files in `{folder}/` may import only {}",
                paths.join("`, `"),
                allowed.join(", ")
            ));
        }
    }
    out
}

/// Whether `src/` itself holds more than [`MAX_TOP_LEVEL_ENTRIES`] entries.
fn too_many_entries(root: &Path) -> Option<String> {
    let entries = fs::read_dir(root).expect("source root is readable");
    let name = |e: std::io::Result<fs::DirEntry>| e.expect("root entry is readable").file_name();
    let mut names: Vec<String> = entries
        .map(|e| name(e).to_string_lossy().into_owned())
        .collect();
    names.sort();
    (names.len() > MAX_TOP_LEVEL_ENTRIES).then(|| {
        format!(
            "top level: src/ has {} entries, more than {MAX_TOP_LEVEL_ENTRIES}; \
             group files into folders: {}",
            names.len(),
            names.join(", ")
        )
    })
}

/// Folders without a `mod.rs` that opens with two or more `//!` lines.
fn undocumented_folders(root: &Path, folders: &[String]) -> Vec<String> {
    let doc_lines = |text: &str| {
        let lines = text.lines().skip_while(|l| l.trim().is_empty());
        lines
            .take_while(|l| l.trim_start().starts_with("//!"))
            .count()
    };
    let problem = |dir: &String| match fs::read_to_string(root.join(dir).join("mod.rs")) {
        Err(_) => Some(format!(
            "docs: folder {dir}/ has no mod.rs (the layout is `folder/mod.rs` + files)"
        )),
        Ok(text) if doc_lines(&text) < 2 => Some(format!(
            "docs: {dir}/mod.rs must open with at least two `//!` lines: \
             what lives in {dir}/ and what it must not import"
        )),
        Ok(_) => None,
    };
    folders.iter().filter_map(problem).collect()
}

/// Guards the real tree against a parser that passes by finding nothing.
fn vacuity(edges: &Edges) -> Vec<String> {
    let mut out = Vec::new();
    if edges.len() < MIN_EDGES {
        out.push(format!(
            "vacuous: only {} file-to-file imports found, expected at least {MIN_EDGES}; \
             is the path parser broken?",
            edges.len()
        ));
    }
    for folder in ["proxy", "auth"] {
        let reached =
            |(from, to): &(String, String)| from == "pipeline.rs" && folder_of(to) == Some(folder);
        if !edges.keys().any(reached) {
            out.push(format!(
                "vacuous: pipeline.rs imports no file in {folder}/; is the path parser broken?"
            ));
        }
    }
    out
}

/// Writes a tree given as `== path` header lines, each followed by the file's
/// text (a later header for the same path overwrites), into a temporary folder.
fn write_tree(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in spec.split("\n== ").skip(1) {
        let (path, text) = file.split_once('\n').unwrap_or((file, ""));
        let path = dir.path().join(path.trim());
        fs::create_dir_all(path.parent().expect("file has a folder")).expect("create folder");
        fs::write(path, text).expect("write file");
    }
    dir
}

/// A tree that keeps every rule, as `== path` headers each followed by the text.
const CLEAN_TREE: &str = "
== lib.rs
pub mod proxy; pub mod auth; pub mod config;
pub use proxy::serve;
== proxy/mod.rs
//! The reverse-proxy core.
//! Must not import auth.
pub mod pool;
pub fn serve() {}
== proxy/pool.rs
use super::serve;
fn connect() { crate::config::load() }
== auth/mod.rs
//! The login workflow.
//! Must not import proxy.
pub mod app; pub mod session; pub mod refresh;
== auth/app.rs
use crate::config::{self, Settings};
== auth/session.rs
== auth/refresh.rs
== config/mod.rs
//! Settings.
//! Imports nothing else.
pub struct Settings;
";

/// Files that, written over [`CLEAN_TREE`], break the rules.
const BREAKING_FILES: &str = "
== proxy/pool.rs
use crate::auth::app::AppAuth;
== auth/app.rs
use crate::auth::{session::Session, refresh};
== auth/session.rs
use super::app::AppAuth;
== cache/mod.rs
pub struct Store;
";

#[test]
fn checker_accepts_a_clean_tree() {
    let tree = write_tree(CLEAN_TREE);
    let violations = check(tree.path());
    assert!(
        violations.is_empty(),
        "clean tree reported:\n{}",
        violations.join("\n")
    );
    let edges = scan(tree.path())
        .into_keys()
        .map(|(from, to)| format!("{from} -> {to}"));
    let expected = "auth/app.rs -> config/mod.rs, lib.rs -> proxy/mod.rs, \
                    proxy/pool.rs -> config/mod.rs, proxy/pool.rs -> proxy/mod.rs";
    assert_eq!(edges.collect::<Vec<_>>().join(", "), expected);
}

#[test]
fn checker_reports_upward_imports_cycles_and_unplaced_folders() {
    let tree = write_tree(&format!("{CLEAN_TREE}{BREAKING_FILES}"));
    let violations = check(tree.path());
    let report = violations.join("\n");
    for needle in [
        "layer: proxy/pool.rs imports auth/app.rs (layer `auth`) via `crate::auth::app::AppAuth`",
        "import cycle: auth/app.rs -> auth/session.rs -> auth/app.rs",
        "auth/session.rs -> auth/app.rs via `super::app::AppAuth`",
        "folder `cache/` is not in the LAYERS table",
        "docs: cache/mod.rs must open with at least two `//!` lines",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in:\n{report}");
    }
    assert_eq!(violations.len(), 4, "unexpected violations:\n{report}");
}

#[test]
fn path_extraction_handles_groups_self_super_comments_and_strings() {
    let source = r##"
use crate::{auth::{self, app::AppAuth}, error::Error};
use super::{
    page::{self as login_page, PageData},
    super::refresh,
};
use super::super::session::Session;
use std::{fmt, io::Read};
// use crate::commented::Out;
/* crate::block::Comment */
let url = "https://idp//crate::in_string"; let n = crate::metrics::count(); // crate::trailing
let c = '"'; let s = r#"crate::raw "quoted""#; let e = '\'';
pub use child::{Thing, inner::*};
mod child;
fn f<'a>(x: &'a str) -> self::child::Other { Vec::<u8>::new() }
#[cfg(test)]
mod tests {
    use crate::only_in_tests;
}
"##;
    let module = ["auth", "login", "endpoint"].map(String::from);
    let found: BTreeSet<String> = references(source, &module)
        .into_iter()
        .map(|(_, t)| t.join("::"))
        .collect();
    let expected = "auth auth::app::AppAuth auth::login::page auth::login::page::PageData \
        auth::refresh auth::session::Session error::Error metrics::count \
        auth::login::endpoint::child::Thing auth::login::endpoint::child::inner \
        auth::login::endpoint::child::Other";
    assert_eq!(
        found,
        expected.split_whitespace().map(String::from).collect()
    );
}
