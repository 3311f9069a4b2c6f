//! The model language end to end: the shipped library, the acme example and
//! invalid models, each asserting its message and location.

use twins::model::{SourceFile, compile, library_files};

fn topo(text: &str) -> Vec<SourceFile> {
    vec![SourceFile {
        path: "topology.toml".into(),
        text: text.into(),
    }]
}

#[test]
fn library_compiles_alone() {
    match compile(&library_files()) {
        Ok(m) => {
            let s = m.summary();
            assert_eq!(s.classes, 10, "{s}");
            assert_eq!(s.twins, 0);
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn library_compiles_with_a_topology() {
    let files = topo(
        r#"
[model]
use = ["library"]

[enterprise]
name = "acme"
class = "Enterprise"
"#,
    );
    if let Err(e) = compile(&files) {
        panic!("{e}");
    }
}

/// Every `*.toml` of a directory under the workspace root, named relative to it.
fn read_dir(rel: &str) -> Vec<SourceFile> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<SourceFile> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| SourceFile {
            path: std::path::Path::new(rel).join(p.file_name().unwrap()),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

#[test]
fn acme_compiles() {
    let model = match compile(&read_dir("examples/acme")) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let s = model.summary();
    println!("{s}");
}
