//! The published crates' manifests: one version for both, pinned exactly
//! where one depends on the other, and the metadata crates.io shows.

use toml::Table;

fn manifest(path: &str) -> Table {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let text =
        std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn get<'a>(table: &'a Table, dotted: &str) -> &'a toml::Value {
    let mut keys = dotted.split('.');
    let first = keys.next().expect("a key");
    keys.fold(
        table.get(first).unwrap_or_else(|| panic!("no `{dotted}`")),
        |value, key| value.get(key).unwrap_or_else(|| panic!("no `{dotted}`")),
    )
}

#[test]
fn internal_dependencies_pin_the_workspace_version() {
    let root = manifest("Cargo.toml");
    let version = get(&root, "workspace.package.version")
        .as_str()
        .expect("a string");
    for krate in ["cm-api", "cm-api-gen"] {
        let requirement = get(&root, &format!("workspace.dependencies.{krate}.version"));
        assert_eq!(
            requirement.as_str(),
            Some(format!("={version}").as_str()),
            "bump `{krate}`'s requirement with workspace.package.version"
        );
    }
}

#[test]
fn published_crates_carry_the_metadata_crates_io_shows() {
    for path in ["crates/api/Cargo.toml", "crates/api-gen/Cargo.toml"] {
        let manifest = manifest(path);
        let package = get(&manifest, "package").as_table().expect("a table");
        for key in [
            "description",
            "license",
            "readme",
            "keywords",
            "categories",
            "documentation",
            "rust-version",
        ] {
            assert!(package.contains_key(key), "{path} has no `{key}`");
        }
        assert!(
            !package.contains_key("publish"),
            "{path} must stay publishable"
        );
    }
    for path in ["xtask/Cargo.toml", "tests/Cargo.toml"] {
        let manifest = manifest(path);
        let publish = get(&manifest, "package.publish");
        assert_eq!(
            publish.as_bool(),
            Some(false),
            "{path} must not be published"
        );
    }
}
