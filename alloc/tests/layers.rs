//! The layer order of `src/lib.rs` holds: no module uses a module of a layer above its own,
//! and no two modules use each other (directly or round a longer loop).
//!
//! The table is read from the crate doc itself, so the doc and this check cannot drift. A
//! "use" is any `crate::path` (or `$crate::path`, or `super::path`) in code; comments, doc
//! comments and the unit-test module at the end of a file (which may use the front door) are
//! skipped. Names re-exported by `lib.rs` (`crate::PoolVec`) count as the module defining them.
//!
//! Not under Miri: it reads files (which Miri's isolation refuses) and runs no unsafe code.

#![cfg(not(miri))]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// `(layer, module path)` rows of the crate doc's table, e.g. `(4, "heap")`, `(2, "heap::class")`.
fn layer_table(lib: &str) -> Vec<(usize, String)> {
    let mut rows = Vec::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! | ") else { continue };
        let mut cells = row.split(" | ");
        let (Some(layer), Some(modules)) = (cells.next(), cells.next()) else { continue };
        let Ok(layer) = layer.trim().parse::<usize>() else { continue };
        for m in modules.split('`').skip(1).step_by(2) {
            rows.push((layer, m.to_string()));
        }
    }
    rows
}

/// The module path of a source file: `heap/core.rs` is `heap::core`, `heap/mod.rs` is `heap`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

/// The table row a module path falls under: its longest listed prefix.
fn unit_of<'t>(table: &'t [(usize, String)], path: &str) -> Option<&'t (usize, String)> {
    table.iter().filter(|(_, m)| path == m || path.starts_with(&format!("{m}::"))).max_by_key(|(_, m)| m.len())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("readable src") {
        let p = e.expect("an entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code lines of a file, with their numbers: up to its unit-test module, without comments.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(")
            && t.contains("test")
            && lines.peek().is_some_and(|(_, l)| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            // A `//` inside a string is rare in this crate; URLs in strings would be cut, which
            // can only hide a use, and no string here holds a `crate::` path.
            Some(i) => &line[..i],
            None => line,
        };
        // A `use` statement spread over lines (a long group) is read as one line, numbered by
        // its first.
        match out.last_mut() {
            Some((_, open)) if is_open_use(open) => open.push_str(code),
            _ => out.push((n + 1, code.to_string())),
        }
    }
    out
}

/// `true` for the start of a `use` statement that has not ended yet.
fn is_open_use(code: &str) -> bool {
    let t = code.trim_start();
    (t.starts_with("use ") || t.contains(" use ")) && !t.contains(';')
}

/// The module paths a code line names after `crate::`, `$crate::` or `super::`, groups
/// (`crate::{a, b::c}`) included.
fn uses(line: &str, module: &str, reexports: &BTreeMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    for (prefix, relative) in [("crate::", false), ("super::", true)] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            let before = &rest[..i];
            rest = &rest[i + prefix.len()..];
            // `super::` only as a path start (the second `super` of `super::super::` is not one).
            if relative && before.ends_with("::") {
                continue;
            }
            let paths: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or_default().split(',').map(path_at).collect(),
                None => vec![path_at(rest)],
            };
            for path in paths.into_iter().filter(|p| !p.is_empty()) {
                // `super` of `heap::core` is `heap`; of `heap/mod.rs` (module `heap`) the root.
                let full = match module.rsplit_once("::") {
                    Some((parent, _)) if relative => format!("{parent}::{path}"),
                    _ => path.to_string(),
                };
                let first = full.split("::").next().unwrap_or_default();
                found.push(reexports.get(first).cloned().unwrap_or(full));
            }
        }
    }
    found
}

/// The path at the start of `text` (`heap::core` of `heap::core::HeapCore;` without the last
/// `::`), empty for a glob or a group.
fn path_at(text: &str) -> &str {
    let text = text.trim_start();
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    text[..end].trim_end_matches(':')
}

/// `Name -> module` for every `pub use module::...::Name` (or `{A, B}`) in `lib.rs`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (_, line) in code_lines(lib) {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let rest = rest.trim_end_matches(';');
        let Some((path, names)) = rest.rsplit_once("::") else { continue };
        let path = path.trim_start_matches("crate::");
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            map.insert(name.trim().to_string(), path.to_string());
        }
    }
    map
}

#[test]
fn no_module_uses_a_layer_above_its_own_and_no_modules_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let table = layer_table(&lib);
    assert!(table.len() >= 8, "the layer table of lib.rs was not found: {table:?}");
    let reexports = reexports(&lib);
    assert!(reexports.get("SmartAlloc").is_some_and(|m| m == "smart"), "{reexports:?}");

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unlisted = Vec::new();
    let mut up = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module.is_empty() {
            continue; // lib.rs: the crate root re-exports from every layer.
        }
        let Some((layer, unit)) = unit_of(&table, &module) else {
            unlisted.push(module);
            continue;
        };
        let text = fs::read_to_string(file).expect("a source file");
        for (n, line) in code_lines(&text) {
            for target in uses(&line, &module, &reexports) {
                let Some((to_layer, to_unit)) = unit_of(&table, &target) else { continue };
                if to_unit == unit {
                    continue;
                }
                edges.entry(unit.clone()).or_default().insert(to_unit.clone());
                if to_layer > layer {
                    up.push(format!("{module} (layer {layer}) uses {target} (layer {to_layer}): line {n}"));
                }
            }
        }
    }
    assert!(unlisted.is_empty(), "modules missing from lib.rs's layer table: {unlisted:?}");
    assert!(up.is_empty(), "uses of a higher layer:\n{}", up.join("\n"));

    // No loops: take away, again and again, the units that use no unit still left.
    let mut left: BTreeSet<String> = edges.keys().cloned().collect();
    loop {
        let done: Vec<String> = left.iter().filter(|u| edges[*u].iter().all(|t| !left.contains(t))).cloned().collect();
        if done.is_empty() {
            break;
        }
        for u in done {
            left.remove(&u);
        }
    }
    let loops: BTreeMap<&String, &BTreeSet<String>> = edges.iter().filter(|(u, _)| left.contains(*u)).collect();
    assert!(loops.is_empty(), "modules that use each other, round a loop: {loops:?}");
}

#[test]
fn the_checker_sees_uses_through_every_form() {
    let re: BTreeMap<String, String> = [("PoolVec".to_string(), "pool".to_string())].into();
    assert_eq!(uses("use crate::heap::HeapCore;", "place::task", &re), ["heap::HeapCore"]);
    assert_eq!(uses("x: $crate::PoolVec<U>,", "vec", &re), ["pool"]);
    assert_eq!(uses("use super::core::HeapCore;", "heap::slot", &re), ["heap::core::HeapCore"]);
    assert_eq!(uses("use super::*;", "heap", &re), Vec::<String>::new());
    assert_eq!(uses("use crate::{error, stats::Kind};", "x", &re), ["error", "stats::Kind"]);
    assert_eq!(uses("use super::{blocks, class::X};", "heap::core", &re), ["heap::blocks", "heap::class::X"]);
    assert_eq!(uses("use super::{a, b};", "heap", &re), ["a", "b"]);
    let lines = code_lines("a\n// crate::x\nb // crate::y\n#[cfg(test)]\nmod tests {\ncrate::z\n}");
    assert_eq!(lines, [(1, "a".to_string()), (3, "b ".to_string())]);
    let group = code_lines("use crate::{\n    error,\n    stats::Kind,\n};\nx");
    assert_eq!(group.len(), 2);
    assert_eq!((group[0].0, uses(&group[0].1, "x", &re)), (1, vec!["error".to_string(), "stats::Kind".to_string()]));
    let table = layer_table("//! | 0 | `a` `b::c` | x |\n//! | 2 | `b` | y |");
    assert_eq!(table, [(0, "a".to_string()), (0, "b::c".to_string()), (2, "b".to_string())]);
    assert_eq!(unit_of(&table, "b::c::d").map(|r| r.0), Some(0));
    assert_eq!(unit_of(&table, "b::e").map(|r| r.0), Some(2));
}
