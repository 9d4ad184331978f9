//! `--help` of every command, compared with `tests/snapshots/`. After an
//! intended change, `UPDATE_SNAPSHOTS=1 cargo test -p cm-cli --test help`
//! rewrites them; review the diff.

mod common;

const COMMANDS: &[&str] = &[
    "",
    "api",
    "api get-source",
    "api sync-comments",
    "get",
    "get comments",
    "get sources",
    "get audit-events",
    "export",
    "create",
    "create comments",
    "create emails",
    "create source",
    "create dataset",
    "create stream",
    "delete",
    "stream listen",
    "config",
    "config add",
    "config import-re",
    "completions",
];

#[tokio::test(flavor = "multi_thread")]
async fn help_matches_the_snapshots() {
    let dir = common::scratch_dir();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for command in COMMANDS {
        let mut cm = common::bare(&dir);
        cm.args(command.split_whitespace()).arg("--help");
        let out = common::output(cm, None).await;
        assert_eq!(out.code, 0, "cm {command} --help: {out:?}");
        let name = if command.is_empty() {
            "cm".to_owned()
        } else {
            format!("cm {command}")
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(format!("{}.txt", name.replace(' ', "_")));
        if update {
            std::fs::write(&path, &out.stdout).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(out.stdout.as_str()) {
            stale.push(format!("{} (`{name} --help`)", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "help differs from the snapshots (UPDATE_SNAPSHOTS=1 to accept): {stale:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_public_operation_is_a_command_and_the_internal_tier_needs_unstable() {
    let dir = common::scratch_dir();
    let mut cm = common::bare(&dir);
    cm.args(["api", "--help"]);
    let help = common::output(cm, None).await.stdout;
    for public in [
        "get-source",
        "sync-comments",
        "export-dataset",
        "list-quotas",
        "query-audit-events",
    ] {
        assert!(
            help.contains(&format!("\n  {public} ")),
            "{public} missing from:\n{help}"
        );
    }
    assert_eq!(
        help.contains("add-support-tenant"),
        cfg!(feature = "unstable")
    );
}
