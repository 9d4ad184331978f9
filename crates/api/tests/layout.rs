//! The module layout `DESIGN.md` describes: no import cycle among the
//! crate's modules, and `error` depends on none of `auth`, `config`,
//! `client` and `transport`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code (not its docs or
/// tests) names through `crate::`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            if path.ends_with("generated") {
                continue;
            }
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (_, rest) in line
                .match_indices("crate::")
                .map(|(i, _)| ((), &line[i + 7..]))
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(module) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = dependencies();
    assert!(graph.contains_key("client") && graph.contains_key("error"));
    let cyclic: Vec<_> = graph.keys().filter(|m| reaches(&graph, m, m)).collect();
    assert!(
        cyclic.is_empty(),
        "modules on an import cycle: {cyclic:?}\n{graph:#?}"
    );
}

#[test]
fn errors_are_a_leaf_of_the_client_modules() {
    let graph = dependencies();
    for module in ["auth", "config", "client", "transport"] {
        assert!(
            !reaches(&graph, "error", module),
            "error depends on {module}: {:?}",
            graph["error"]
        );
    }
}

/// Per-call state travels in one task-local (`scope.rs`), so a scope set
/// around a call cannot be half seen.
#[test]
fn one_task_local_carries_the_per_call_state() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut statics = Vec::new();
    let mut files = vec![src];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for block in text.split("task_local!").skip(1) {
                let body = &block[..block.find('}').unwrap()];
                for line in body
                    .lines()
                    .filter(|l| l.trim_start().starts_with("static "))
                {
                    statics.push(format!("{}: {}", path.display(), line.trim()));
                }
            }
        }
    }
    assert_eq!(statics.len(), 1, "{statics:#?}");
    assert!(statics[0].contains("scope.rs"), "{statics:?}");
}
