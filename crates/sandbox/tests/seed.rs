//! Comments loaded at start: `SandboxBuilder::seed_comments` and the
//! binary's `--seed FILE`, read back through `cm_api::Client`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cm_api::Client;
use cm_sandbox::Sandbox;
use common::{client, comment};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_cm-sandbox");

/// A seed file in the temp dir, removed on drop.
struct SeedFile(PathBuf);

impl SeedFile {
    fn new(name: &str, lines: &[serde_json::Value]) -> Self {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        Self::raw(name, &text)
    }

    fn raw(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("cm-sandbox-{name}-{}.jsonl", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SeedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn line(project: &str, source: &str, id: &str, text: &str) -> serde_json::Value {
    json!({
        "project": project,
        "source": source,
        "comment": {"id": id, "timestamp": "2026-03-01T10:00:00Z", "messages": [{"body": {"text": text}}]},
    })
}

async fn ids(client: &Client, project: &str, source: &str) -> Vec<String> {
    client
        .list_source_comments()
        .project(project)
        .source_name(source)
        .send()
        .await
        .expect("list_source_comments")
        .into_inner()
        .comments
        .into_iter()
        .map(|c| c.id)
        .collect()
}

#[tokio::test]
async fn seed_comments_are_served_as_synced() {
    let sent = vec![
        comment("c1", "2026-03-01T10:00:00Z", "Where is my refund?"),
        comment("c2", "2026-03-01T11:00:00Z", "Thanks!"),
    ];
    let sandbox = Sandbox::builder()
        .validate_responses(true)
        .seed_comments("acme", "inbox", sent.clone())
        .start()
        .await
        .unwrap();
    let client = client(&sandbox);
    assert_eq!(ids(&client, "acme", "inbox").await, ["c1", "c2"]);
    let got = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c2")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    assert_eq!(
        serde_json::to_value(&got.messages).unwrap(),
        serde_json::to_value(&sent[1].messages).unwrap()
    );
    // The project and source were created, and are listed.
    let sources = client
        .list_project_sources()
        .project("acme")
        .send()
        .await
        .unwrap();
    assert_eq!(sources.sources.len(), 1);
    assert_eq!(sources.sources[0].name, "inbox");
    assert_eq!(sandbox.schema_violations(), vec![]);
}

#[tokio::test]
async fn a_seed_comment_the_sandbox_refuses_keeps_it_from_starting() {
    let error = Sandbox::builder()
        .seed_comments(
            "acme",
            "inbox",
            [json!({"id": "c1"}), json!({"id": "c2", "messages": "no"})],
        )
        .start()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(
        message.contains("seed comment 2: `comment.messages`"),
        "{message}"
    );
}

#[test]
fn the_binary_exits_non_zero_on_a_malformed_line_naming_it() {
    let file = SeedFile::raw(
        "malformed",
        &format!(
            "{}\n\n{{\"project\": \"acme\", \"source\": \"inbox\", \"comment\": {{\"id\": \n",
            line("acme", "inbox", "c1", "hi")
        ),
    );
    let out = Command::new(BIN)
        .args(["--port", "0", "--seed", file.path()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("--seed {}: line 3: ", file.path())),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

#[test]
fn the_binary_exits_non_zero_on_a_comment_the_sandbox_refuses() {
    let bad = json!({"project": "acme", "source": "inbox", "comment": {"id": "c2", "messages": [{"body": {"text": "x"}, "sent_at": "yesterday"}]}});
    let file = SeedFile::new("refused", &[line("acme", "inbox", "c1", "hi"), bad]);
    let out = Command::new(BIN)
        .args(["--seed", file.path(), "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("line 2: "), "{stderr}");
    assert!(stderr.contains("sent_at"), "{stderr}");
}

#[tokio::test]
async fn the_binary_serves_the_comments_of_its_seed_file() {
    let file = SeedFile::new(
        "good",
        &[
            line("acme", "inbox", "c1", "Refund?"),
            line("acme", "inbox", "c2", "Thanks"),
            line("globex", "archive", "a1", "Old"),
        ],
    );
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--seed", file.path()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let mut text = String::new();
        if stdout.read_line(&mut text).unwrap() == 0 {
            let _ = child.kill();
            panic!("the binary stopped: {printed:?}");
        }
        if let Some(u) = text.trim().strip_prefix("export REINFER_ENDPOINT=") {
            url = Some(u.to_owned());
        }
        if let Some(t) = text.trim().strip_prefix("export REINFER_TOKEN=") {
            token = Some(t.to_owned());
        }
        printed.push(text);
    }
    let client = Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-sandbox-tests-no-config.toml"))
        .endpoint(cm_api::Endpoint::parse(url.as_deref().unwrap()).unwrap())
        .token(token.unwrap())
        .build()
        .unwrap();
    let inbox = ids(&client, "acme", "inbox").await;
    let archive = ids(&client, "globex", "archive").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        printed[0].contains(&format!("seeded 3 comment(s) from {}", file.path())),
        "{printed:?}"
    );
    assert_eq!(inbox, ["c1", "c2"]);
    assert_eq!(archive, ["a1"]);
}
