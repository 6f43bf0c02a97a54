//! sluice: HTTP server, caching reverse proxy, traffic limiter and waiting room.
//!
//! The modules are layers: each uses only the ones after it in [`LAYERS`]
//! (a unit test below reads every `crate::` path and fails on one that runs
//! up the order; the README's Layout section states the same order).

pub mod cache;
pub mod cluster;
pub mod config;
pub mod event;
pub mod http;
pub mod limits;
pub mod log;
pub mod process;
pub mod proto;
pub mod proxy;
pub mod shm;
pub mod sys;
pub mod tls;
pub mod util;
pub mod waiting_room;
pub mod zones;

/// The layer order, top first: a module may use only the modules after it.
/// `main.rs` (the CLI) sits above them all.
pub const LAYERS: &[&str] = &[
    "process",
    "proxy",
    "http",
    "cluster",
    "zones",
    "waiting_room",
    "limits",
    "cache",
    "event",
    "log",
    "config",
    "tls",
    "proto",
    "shm",
    "sys",
    "util",
];

#[cfg(test)]
mod layer_tests {
    use super::LAYERS;
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The modules named by `crate::NAME` paths in `line`, comments cut off.
    fn crate_paths(line: &str) -> impl Iterator<Item = &str> {
        let code = line.split("//").next().unwrap_or("");
        code.match_indices("crate::").filter_map(move |(i, _)| {
            let rest = &code[i + 7..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let before = code[..i].chars().next_back();
            (!before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .then(|| &rest[..end])
        })
    }

    #[test]
    fn no_module_uses_a_layer_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let rank = |m: &str| LAYERS.iter().position(|&l| l == m);
        let mut violations = Vec::new();
        let mut seen_modules = 0;
        for e in std::fs::read_dir(&src).expect("src/").flatten() {
            let p = e.path();
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if name == "lib" || name == "main" {
                continue;
            }
            let own = rank(&name)
                .unwrap_or_else(|| panic!("module `{name}` is not placed in LAYERS (src/lib.rs)"));
            seen_modules += 1;
            let mut files = Vec::new();
            if p.is_dir() {
                rust_files(&p, &mut files);
            } else {
                files.push(p.clone());
            }
            for f in files {
                let text = std::fs::read_to_string(&f).expect("read source");
                for (n, line) in text.lines().enumerate() {
                    for used in crate_paths(line) {
                        if rank(used).is_some_and(|r| r < own) {
                            violations.push(format!(
                                "{}:{}: {name} uses {used}, a layer above it",
                                f.display(),
                                n + 1
                            ));
                        }
                    }
                }
            }
        }
        assert_eq!(seen_modules, LAYERS.len(), "a layer has no module");
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }

    #[test]
    fn the_readme_states_the_same_layer_order() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README.md");
        let want = LAYERS
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        assert!(
            readme.contains(&want),
            "README.md's Layout section must state the layer order as: {want}"
        );
    }

    #[test]
    fn crate_paths_ignore_comments_and_longer_names() {
        let got: Vec<&str> =
            crate_paths("use crate::http::cond; x(crate::cache::a); // crate::process").collect();
        assert_eq!(got, ["http", "cache"]);
        assert_eq!(crate_paths("my_crate::http").count(), 0);
    }
}
