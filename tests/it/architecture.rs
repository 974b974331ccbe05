//! Issue 30, item 6: the house has no circles. Reads every file of `src/` as Rust (`syn`),
//! collects what each one names of the crate (`use crate::…`, `super::…`, paths in the code;
//! test modules left out), and checks:
//!
//! 1. no circle between files;
//! 2. every top-level module is in ARCHITECTURE.md's layer table, and imports only from
//!    layers below its own: siblings in one layer never import each other;
//! 3. `store/` is imported only by the modules ARCHITECTURE.md names (`served/`, the CLI,
//!    the daemon): the protocols stand on `served/` and `model/`.
//!
//! A new import against either fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module, as its path below `crate` (`["dyndns", "request"]`); the crate root is empty.
type Module = Vec<String>;

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The module a file holds (`src/http/mod.rs` is `http`).
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).expect("below src/");
    let mut parts: Module = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Collects the crate paths a file names.
struct Names {
    /// The file's module.
    module: Module,
    /// Absolute paths named, as segments below `crate`.
    paths: Vec<Module>,
}

impl Names {
    /// `segments` made absolute from this file's module; None when it does not start at
    /// `crate`, `super` or `self`.
    fn absolute(&self, segments: &[String]) -> Option<Module> {
        let first = segments.first()?;
        let mut base = self.module.clone();
        let mut rest = &segments[1..];
        match first.as_str() {
            "crate" => base.clear(),
            "self" => {}
            "super" => {
                base.pop();
                while rest.first().is_some_and(|segment| segment == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            _ => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// Every full path of a `use` tree, after `prefix`.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.add(prefix, Some(name.ident.to_string())),
            syn::UseTree::Rename(rename) => self.add(prefix, Some(rename.ident.to_string())),
            syn::UseTree::Glob(_) => self.add(prefix, None),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Notes `prefix` and `last` as a path.
    fn add(&mut self, prefix: &[String], last: Option<String>) {
        let mut segments = prefix.to_vec();
        if let Some(last) = last {
            if last != "self" {
                segments.push(last);
            }
        }
        if let Some(path) = self.absolute(&segments) {
            self.paths.push(path);
        }
    }
}

/// Whether `attributes` hold `#[cfg(test)]`.
fn is_test_only(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        attribute.path().is_ident("cfg")
            && attribute
                .parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_test_only(&item.attrs) {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        self.add(&segments, None);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`tracing::info!(…)`, `matches!(…)`) as tokens: any
        // `crate :: a :: b` run among them.
        let tokens: Vec<String> = mac
            .tokens
            .clone()
            .into_iter()
            .map(|token| token.to_string())
            .collect();
        let mut index = 0;
        while index < tokens.len() {
            if matches!(tokens[index].as_str(), "crate" | "super") {
                let mut segments = vec![tokens[index].clone()];
                let mut next = index + 1;
                while next + 2 < tokens.len() + 1
                    && tokens.get(next).map(String::as_str) == Some(":")
                    && tokens.get(next + 1).map(String::as_str) == Some(":")
                    && tokens.get(next + 2).is_some()
                {
                    segments.push(tokens[next + 2].clone());
                    next += 3;
                }
                self.add(&segments, None);
                index = next;
            } else {
                index += 1;
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// The module of `modules` that `path` names: its longest prefix that is one.
fn resolve(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|length| path[..length].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// The layer table of ARCHITECTURE.md: top-level module to its layer (1 is the top).
fn layers(root: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text
        .find("<!-- layers -->")
        .expect("ARCHITECTURE.md has a <!-- layers --> table");
    let end = text[start..]
        .find("<!-- /layers -->")
        .expect("the layer table ends with <!-- /layers -->")
        + start;
    let mut layers = BTreeMap::new();
    for line in text[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, layer, modules, ..] = cells.as_slice() else {
            continue;
        };
        let Ok(layer) = layer.parse::<usize>() else {
            continue;
        };
        for module in modules.split(',') {
            let module = module.trim().trim_matches('`').trim_end_matches('/');
            let module = module.trim_end_matches(".rs");
            assert!(
                layers.insert(module.to_string(), layer).is_none(),
                "{module} is twice in the layer table"
            );
        }
    }
    layers
}

/// The modules that may import `store/`: ARCHITECTURE.md's line `store/ is used only by: …`.
fn store_users(root: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let marker = "`store/` is used only by:";
    let start = text
        .find(marker)
        .expect("ARCHITECTURE.md names the users of store/")
        + marker.len();
    let line = text[start..].lines().next().unwrap_or_default();
    line.trim()
        .trim_end_matches('.')
        .split(',')
        .map(|module| {
            module
                .trim()
                .trim_matches('`')
                .trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect()
}

/// Strongly connected components of more than one file (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn connect<'a>(state: &mut State<'a>, node: &'a Module) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        for target in state.edges.get(node).into_iter().flatten() {
            let Some((target, _)) = state.edges.get_key_value(target) else {
                continue;
            };
            if !state.index.contains_key(target) {
                connect(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            loop {
                let member = state.stack.pop().expect("on the stack");
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            connect(&mut state, node);
        }
    }
    state.found
}

/// The file-to-file import graph of `src/` (the binary's `main.rs` and the root left out).
fn import_graph(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut parsed = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let syntax =
            syn::parse_file(&text).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        parsed.push((module, syntax));
    }
    let modules: BTreeSet<Module> = parsed.iter().map(|(module, _)| module.clone()).collect();
    let mut edges = BTreeMap::new();
    for (module, syntax) in parsed {
        let mut names = Names {
            module: module.clone(),
            paths: Vec::new(),
        };
        names.visit_file(&syntax);
        let targets: BTreeSet<Module> = names
            .paths
            .iter()
            .filter_map(|path| resolve(&modules, path))
            .filter(|target| *target != module)
            // A module's own children are below it (`mod.rs` re-exporting what they hold).
            .filter(|target| !target.starts_with(&module))
            .collect();
        edges.insert(module, targets);
    }
    edges
}

#[test]
fn no_file_imports_in_a_circle_and_no_layer_imports_upward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = import_graph(root);
    let show = |module: &Module| module.join("/");

    let found = circles(&edges);
    assert!(
        found.is_empty(),
        "files importing each other in a circle: {}",
        found
            .iter()
            .map(|circle| circle.iter().map(show).collect::<Vec<_>>().join(" <-> "))
            .collect::<Vec<_>>()
            .join("; ")
    );

    let layers = layers(root);
    let mut problems = Vec::new();
    for (from, targets) in &edges {
        let top = &from[0];
        let Some(&layer) = layers.get(top) else {
            problems.push(format!(
                "{top} is not in ARCHITECTURE.md's layer table: place it"
            ));
            continue;
        };
        for target in targets {
            let other = &target[0];
            if other == top {
                continue;
            }
            match layers.get(other) {
                Some(&below) if below > layer => {}
                Some(&level) => problems.push(format!(
                    "{} (layer {layer}) imports {} (layer {level}): only layers below may be \
                     imported",
                    show(from),
                    show(target)
                )),
                None => problems.push(format!(
                    "{other} is not in ARCHITECTURE.md's layer table: place it"
                )),
            }
        }
    }
    let store_users = store_users(root);
    for (from, targets) in &edges {
        let top = &from[0];
        if top == "store" || store_users.contains(top) {
            continue;
        }
        for target in targets.iter().filter(|target| target[0] == "store") {
            problems.push(format!(
                "{} imports {}: only {} may (the others read model/ values through served/)",
                show(from),
                show(target),
                store_users.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself finds what it is for: a circle and an upward import are reported.
#[test]
fn the_check_sees_circles_and_upward_imports() {
    let module = |path: &str| -> Module { path.split('/').map(String::from).collect() };
    let mut edges = BTreeMap::new();
    edges.insert(module("a/x"), BTreeSet::from([module("b")]));
    edges.insert(module("b"), BTreeSet::from([module("a/x")]));
    edges.insert(module("c"), BTreeSet::new());
    assert_eq!(circles(&edges), [vec![module("a/x"), module("b")]]);

    let source = "use crate::{http::response::{self, text}, store::StoreError};
        use super::request::Endpoint;
        fn f() { crate::metrics::metrics(); tracing::info!(\"{}\", crate::log::Untrusted::new(\"\")); }
        #[cfg(test)] mod test { use crate::daemon::run; }";
    let mut names = Names {
        module: module("dyndns/update"),
        paths: Vec::new(),
    };
    names.visit_file(&syn::parse_file(source).unwrap());
    let named: BTreeSet<String> = names.paths.iter().map(|path| path.join("::")).collect();
    for expected in [
        "http::response",
        "http::response::text",
        "store::StoreError",
        "dyndns::request::Endpoint",
        "metrics::metrics",
        "log::Untrusted::new",
    ] {
        assert!(
            named.contains(expected),
            "{expected} missing from {named:?}"
        );
    }
    assert!(
        !named.iter().any(|path| path.starts_with("daemon")),
        "test modules are left out: {named:?}"
    );
}
