//! Runs the `cm` binary against an in-process cm-sandbox, with nothing
//! from the user's environment or config file.

#![allow(dead_code, reason = "each test file uses part of it")]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use cm_sandbox::Sandbox;
use tokio::io::AsyncWriteExt;

/// What a run of `cm` printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `cm` pointed at a sandbox, with its own config file and directory.
pub struct Cm {
    pub sandbox: Sandbox,
    pub dir: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory for one test's files.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cm-cli-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The binary under test with a clean environment: no credentials, no
/// profile, a config file of the test's own, and a fixed help width.
pub fn bare(dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cm"));
    for var in [
        "REINFER_ENDPOINT",
        "REINFER_TOKEN",
        "REINFER_PROFILE",
        "REINFER_CLIENT_ID",
        "REINFER_CLIENT_SECRET",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .env("CM_API_CONFIG", dir.join("config.toml"))
        .env("COLUMNS", "100")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub async fn output(mut command: tokio::process::Command, stdin: Option<&[u8]>) -> Out {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("cm runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    let out = child.wait_with_output().await.expect("cm ends");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

impl Cm {
    pub async fn start() -> Self {
        Self::on(Sandbox::start().await.expect("sandbox")).await
    }

    pub async fn on(sandbox: Sandbox) -> Self {
        Self {
            sandbox,
            dir: scratch_dir(),
        }
    }

    /// `cm` with the sandbox's endpoint and token in the environment.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = bare(&self.dir);
        command
            .env("REINFER_ENDPOINT", self.sandbox.base_url())
            .env("REINFER_TOKEN", self.sandbox.token())
            .args(args);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        output(self.command(args), None).await
    }

    pub async fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        output(self.command(args), Some(input)).await
    }

    /// Runs `args`, which must succeed, and returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(out.code, 0, "cm {args:?} failed: {out:?}");
        out.stdout
    }

    /// A file in the test's directory.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }
}

/// A project `acme` with a source `inbox` and a dataset `triage` on it.
pub async fn acme(cm: &Cm) {
    cm.ok(&["create", "project", "acme", "--title", "ACME"])
        .await;
    cm.ok(&["create", "source", "acme/inbox", "--title", "Inbox"])
        .await;
    cm.ok(&["create", "dataset", "acme/triage", "-s", "acme/inbox"])
        .await;
}

/// `n` comments as JSON lines: ids c0.., one a minute from 2026-11-01,
/// Country France for odd ids and Spain for even ones.
pub fn comments(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":\"c{i}\",\"timestamp\":\"2026-11-01T{:02}:{:02}:00Z\",\"messages\":[{{\"body\":{{\"text\":\"hello {i}\"}}}}],\"user_properties\":{{\"string:Country\":\"{}\"}}}}\n",
                i / 60 % 24,
                i % 60,
                if i % 2 == 1 { "France" } else { "Spain" }
            )
        })
        .collect()
}
