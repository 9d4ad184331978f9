//! Every command of `cm` against cm-sandbox: what it prints on stdout and
//! stderr, its exit status, and the state it leaves on the server.

mod common;

use cm_sandbox::Fault;
use common::{Cm, acme, comments};
use serde_json::{Value, json};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn ids(lines: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| l["comment"]["id"].as_str().expect("comment id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn resources_are_created_listed_as_tables_or_json_and_deleted() {
    let cm = Cm::start().await;
    acme(&cm).await;
    cm.ok(&["create", "bucket", "acme/mail", "--title", "Mail"])
        .await;
    cm.ok(&[
        "create",
        "stream",
        "acme/triage/new-mail",
        "--title",
        "New mail",
    ])
    .await;

    let projects = cm.ok(&["get", "projects"]).await;
    let lines: Vec<&str> = projects.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ID", "TITLE"]
    );
    assert!(
        lines[1].starts_with("acme  ") && lines[1].ends_with("  ACME"),
        "{projects}"
    );
    assert_eq!(lines.len(), 2, "{projects}");

    let sources: Value =
        serde_json::from_str(&cm.ok(&["get", "sources", "acme", "-o", "json"]).await).unwrap();
    assert_eq!(sources.as_array().unwrap().len(), 1);
    assert_eq!(
        (sources[0]["owner"].as_str(), sources[0]["name"].as_str()),
        (Some("acme"), Some("inbox"))
    );
    assert_eq!(sources[0]["title"], "Inbox");
    let source_id = sources[0]["id"].as_str().unwrap().to_owned();

    let datasets = json_lines(&cm.ok(&["get", "datasets", "-o", "jsonl"]).await);
    assert_eq!(datasets.len(), 1);
    assert_eq!(datasets[0]["source_ids"], json!([source_id]));
    let buckets = cm.ok(&["get", "buckets"]).await;
    assert!(
        buckets
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("acme     mail  "),
        "{buckets}"
    );
    let streams = cm.ok(&["get", "streams", "acme/triage"]).await;
    assert!(
        streams.lines().nth(1).unwrap().starts_with("new-mail  "),
        "{streams}"
    );
    assert!(
        streams.lines().nth(1).unwrap().ends_with("New mail"),
        "{streams}"
    );
    let users = json_lines(&cm.ok(&["get", "users", "-o", "jsonl"]).await);
    assert!(users.iter().any(|u| u["username"] == "admin"), "{users:?}");
    let quotas = cm.ok(&["get", "quotas"]).await;
    assert_eq!(
        quotas
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["KIND", "HARD", "LIMIT", "USAGE"]
    );
    let sources_row = quotas
        .lines()
        .find(|l| l.starts_with("sources "))
        .expect("sources quota");
    assert_eq!(
        sources_row.split_whitespace().collect::<Vec<_>>(),
        ["sources", "10000", "1"]
    );
    let events = json_lines(&cm.ok(&["get", "audit-events", "-o", "jsonl"]).await);
    assert!(!events.is_empty());

    let not_empty = cm.run(&["delete", "project", "acme"]).await;
    assert_eq!(not_empty.code, 5, "{not_empty:?}");
    assert!(
        not_empty
            .stderr
            .starts_with("cm: delete_project: HTTP 409: project `acme` is not empty"),
        "{not_empty:?}"
    );
    for (kind, name) in [
        ("stream", "acme/triage/new-mail"),
        ("dataset", "acme/triage"),
        ("source", "acme/inbox"),
        ("bucket", "acme/mail"),
    ] {
        let out = cm.run(&["delete", kind, name]).await;
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (0, format!("deleted {kind} {name}\n").as_str())
        );
    }
    assert_eq!(cm.ok(&["get", "sources", "-o", "json"]).await.trim(), "[]");
    assert_eq!(cm.ok(&["get", "datasets", "-o", "json"]).await.trim(), "[]");
    assert_eq!(cm.run(&["get", "streams", "acme/triage"]).await.code, 4);
    assert_eq!(cm.ok(&["get", "buckets", "-o", "jsonl"]).await, "");
    let again = cm.run(&["delete", "source", "acme/inbox"]).await;
    assert_eq!(again.code, 4, "{again:?}");
    assert!(
        again.stderr.starts_with("cm: get_source: HTTP 404"),
        "{again:?}"
    );
    assert_eq!(again.stderr.lines().count(), 1, "{again:?}");
    cm.ok(&["delete", "project", "acme"]).await;
    assert_eq!(cm.ok(&["get", "projects", "-o", "json"]).await.trim(), "[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn cm_api_sends_any_operation_and_prints_the_answer_as_sent() {
    let cm = Cm::start().await;
    let created = cm
        .run_with_stdin(
            &["api", "create-project", "--project", "acme", "--body", "-"],
            br#"{"project": {"title": "ACME", "description": "from stdin"}}"#,
        )
        .await;
    assert_eq!(created.code, 0, "{created:?}");
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(created["project"]["description"], "from stdin");

    let body = cm.file("source.json", r#"{"source": {"title": "Inbox"}}"#);
    cm.ok(&[
        "api",
        "create_source",
        "--project",
        "acme",
        "--source-name",
        "in box",
        "--body-file",
        body.to_str().unwrap(),
    ])
    .await;
    let answer: Value = serde_json::from_str(
        &cm.ok(&[
            "api",
            "get-source",
            "--project",
            "acme",
            "--source-name",
            "in box",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(answer["status"], "ok");
    assert_eq!(answer["source"]["name"], "in box");
    assert_eq!(answer["source"]["title"], "Inbox");
    // Every field the server sent, in one line with -o jsonl.
    let line = cm
        .ok(&[
            "api",
            "get-source",
            "--project",
            "acme",
            "--source-name",
            "in box",
            "-o",
            "jsonl",
        ])
        .await;
    assert_eq!(line.lines().count(), 1);
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), answer);

    // Checked before anything is sent: a missing parameter, a bad integer,
    // a body that is not JSON.
    let before = cm.sandbox.request_count();
    let missing = cm.run(&["api", "get-source", "--project", "acme"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("--source-name <STRING>"),
        "{missing:?}"
    );
    let not_json = cm
        .run(&["api", "create-project", "--project", "x", "--body", "{nope"])
        .await;
    assert_eq!(not_json.code, 2);
    assert!(
        not_json
            .stderr
            .starts_with("cm: the body from --body is not JSON"),
        "{not_json:?}"
    );
    let no_body = cm.run(&["api", "create-project", "--project", "x"]).await;
    assert_eq!(no_body.code, 2, "{no_body:?}");
    let dots = cm
        .run(&["api", "get-source", "--project", "..", "--source-name", "x"])
        .await;
    assert_eq!(dots.code, 2, "{dots:?}");
    assert_eq!(cm.sandbox.request_count(), before);

    let absent = cm
        .run(&[
            "api",
            "get-source",
            "--project",
            "acme",
            "--source-name",
            "nope",
        ])
        .await;
    assert_eq!(absent.code, 4);
    assert_eq!(absent.stdout, "");
    assert!(
        absent.stderr.starts_with("cm: get_source: HTTP 404: "),
        "{absent:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_are_uploaded_then_read_back_with_filters_and_in_parallel() {
    let cm = Cm::start().await;
    acme(&cm).await;
    let input = cm.file("comments.jsonl", &comments(300));

    let out = cm
        .run(&[
            "create",
            "comments",
            "acme/inbox",
            "-f",
            input.to_str().unwrap(),
            "--batch-size",
            "64",
            "--concurrency",
            "4",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr,
        "synced 300 comments (300 new, 0 updated, 0 unchanged) in 5 requests; 0 failed, 0 not sent, 0 invalid lines\n"
    );
    assert!(!cm.dir.join("comments.jsonl.failed.jsonl").exists());

    let all = json_lines(&cm.ok(&["get", "comments", "acme/inbox"]).await);
    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&all), expected);
    let c7 = all.iter().find(|l| l["comment"]["id"] == "c7").unwrap();
    assert_eq!(c7["comment"]["messages"][0]["body"]["text"], "hello 7");

    let parallel = json_lines(
        &cm.ok(&[
            "get",
            "comments",
            "acme/inbox",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-02T00:00:00Z",
            "--parallel",
            "4",
        ])
        .await,
    );
    assert_eq!(ids(&parallel), expected);
    // [01:00, 02:00) holds c60..c119.
    let hour = json_lines(
        &cm.ok(&[
            "get",
            "comments",
            "acme/inbox",
            "--from",
            "2026-11-01T01:00:00Z",
            "--to",
            "2026-11-01T02:00:00Z",
        ])
        .await,
    );
    assert_eq!(hour.len(), 60);
    assert!(hour.iter().all(|l| {
        (60..120).contains(
            &l["comment"]["id"].as_str().unwrap()[1..]
                .parse::<u32>()
                .unwrap(),
        )
    }));
    let france = json_lines(
        &cm.ok(&[
            "get",
            "comments",
            "acme/inbox",
            "-p",
            "string:Country=France",
        ])
        .await,
    );
    assert_eq!(france.len(), 150);
    assert!(
        france
            .iter()
            .all(|l| l["comment"]["user_properties"]["string:Country"] == "France")
    );
    let before = cm.sandbox.request_count();
    let paged = json_lines(
        &cm.ok(&["get", "comments", "acme/inbox", "--page-size", "50"])
            .await,
    );
    assert_eq!(ids(&paged), expected);
    assert_eq!(
        cm.sandbox.request_count() - before,
        6,
        "300 comments in pages of 50"
    );
    let two = cm
        .ok(&["get", "comments", "acme/inbox", "--stop-after", "2"])
        .await;
    assert_eq!(two.lines().count(), 2);

    let exported = json_lines(&cm.ok(&["export", "acme/triage"]).await);
    assert_eq!(ids(&exported), expected);
    let exported = json_lines(
        &cm.ok(&[
            "export",
            "acme/triage",
            "--from",
            "2026-11-01T00:00:00Z",
            "--parallel",
            "3",
        ])
        .await,
    );
    assert_eq!(ids(&exported), expected);
    // Nothing is reviewed yet; then two comments are labelled.
    assert_eq!(
        cm.ok(&[
            "get",
            "comments",
            "acme/inbox",
            "-d",
            "acme/triage",
            "--reviewed-only"
        ])
        .await,
        ""
    );
    let source_id = c7["comment"]["source_id"].as_str().unwrap();
    let dataset = json!({"dataset": {"source_ids": [source_id], "label_defs": [{"name": "Billing > Refund"}, {"name": "Shipping"}]}}).to_string();
    cm.ok(&[
        "api",
        "create-dataset",
        "--project",
        "acme",
        "--dataset-name",
        "labelled",
        "--body",
        &dataset,
    ])
    .await;
    for (id, label) in [("c1", "Billing > Refund"), ("c2", "Shipping")] {
        let body =
            json!({"labelling": [{"group": "default", "assigned": [{"name": label}]}]}).to_string();
        let uid = format!("{source_id}.{id}");
        cm.ok(&[
            "api",
            "update-labelling",
            "--project",
            "acme",
            "--dataset-name",
            "labelled",
            "--comment-uid",
            &uid,
            "--body",
            &body,
        ])
        .await;
    }
    let reviewed = json_lines(
        &cm.ok(&[
            "get",
            "comments",
            "acme/inbox",
            "-d",
            "acme/labelled",
            "--reviewed-only",
        ])
        .await,
    );
    assert_eq!(ids(&reviewed), ["c1", "c2"]);
    let billing = json_lines(
        &cm.ok(&["export", "acme/labelled", "--label", "Billing"])
            .await,
    );
    assert_eq!(ids(&billing), ["c1"]);
    assert_eq!(
        billing[0]["annotations"]["labels"]["assigned"][0]["name"],
        "Billing > Refund"
    );
    let needs_dataset = cm
        .run(&["get", "comments", "acme/inbox", "--label", "Refund"])
        .await;
    assert_eq!(needs_dataset.code, 2, "{needs_dataset:?}");
    let needs_from = cm.run(&["export", "acme/triage", "--parallel", "3"]).await;
    assert_eq!(needs_from.code, 2, "{needs_from:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_or_invalid_line_goes_to_the_report_which_can_be_fed_back_in() {
    let cm = Cm::start().await;
    acme(&cm).await;
    let good = comments(5);
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "{not json");
    let input = cm.file("in.jsonl", &(lines.join("\n") + "\n"));
    // The first request (c0, alone) is rejected for its content.
    cm.sandbox
        .faults()
        .inject(
            Fault::status(422)
                .message("comment c0 is bad")
                .on("sync_comments")
                .times(1),
        )
        .unwrap();

    let out = cm
        .run(&[
            "create",
            "comments",
            "acme/inbox",
            "-f",
            input.to_str().unwrap(),
            "--batch-size",
            "1",
            "--concurrency",
            "1",
        ])
        .await;

    assert_eq!(out.code, 6, "{out:?}");
    let report = cm.dir.join("in.jsonl.failed.jsonl");
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        format!("{}\n{{not json\n", lines[0])
    );
    assert!(out.stderr.contains("synced 4 comments"), "{out:?}");
    assert!(out.stderr.contains("line 3: not a valid item"), "{out:?}");
    assert!(
        out.stderr
            .contains("line 1 (c0): sync_comments: HTTP 422: comment c0 is bad"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("2 lines not stored are in {}", report.display())),
        "{out:?}"
    );

    // The report never overwrites its input.
    let same = cm
        .run(&[
            "create",
            "comments",
            "acme/inbox",
            "-f",
            report.to_str().unwrap(),
            "--failed",
            report.to_str().unwrap(),
        ])
        .await;
    assert_eq!(same.code, 2, "{same:?}");
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        format!("{}\n{{not json\n", lines[0])
    );

    // Fed back in (fixed), it completes and the report is gone.
    std::fs::write(&report, format!("{}\n", lines[0])).unwrap();
    let again = cm
        .run(&[
            "create",
            "comments",
            "acme/inbox",
            "-f",
            report.to_str().unwrap(),
            "--failed",
            cm.dir.join("again.jsonl").to_str().unwrap(),
        ])
        .await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        json_lines(&cm.ok(&["get", "comments", "acme/inbox"]).await).len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_upload_keeps_every_line_not_stored_and_exits_with_the_cause() {
    let cm = Cm::start().await;
    acme(&cm).await;
    let input = comments(10);
    cm.sandbox
        .faults()
        .inject(
            Fault::status(403)
                .message("no write access")
                .on("sync_comments")
                .always(),
        )
        .unwrap();

    let report = cm.dir.join("left.jsonl");
    let out = cm
        .run_with_stdin(
            &[
                "create",
                "comments",
                "acme/inbox",
                "--batch-size",
                "3",
                "--failed",
                report.to_str().unwrap(),
            ],
            input.as_bytes(),
        )
        .await;

    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("cm: the upload stopped: sync_comments: HTTP 403"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap(), input);
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_are_uploaded_to_a_bucket() {
    let cm = Cm::start().await;
    cm.ok(&["create", "project", "acme"]).await;
    cm.ok(&["create", "bucket", "acme/mail"]).await;
    let emails: String = (0..3)
        .map(|i| {
            json!({
                "id": format!("e{i}"),
                "mailbox": "support@acme.example",
                "timestamp": "2026-11-01T10:00:00Z",
                "mime_content": format!("From: a@b.example\r\nSubject: hi {i}\r\n\r\nhello {i}\r\n"),
            })
            .to_string()
                + "\n"
        })
        .collect();

    let out = cm
        .run_with_stdin(
            &["create", "emails", "acme/mail", "--no-charge"],
            emails.as_bytes(),
        )
        .await;

    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.starts_with("synced 3 emails (3 new"), "{out:?}");
    let stored: Value = serde_json::from_str(
        &cm.ok(&[
            "api",
            "query-bucket-emails",
            "--project",
            "acme",
            "--bucket-name",
            "mail",
            "--body",
            "{}",
        ])
        .await,
    )
    .unwrap();
    let mut ids: Vec<&str> = stored["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e0", "e1", "e2"]);
}

/// Listens to the stream `stream_of` makes until it is empty.
const LISTEN: &[&str] = &["stream", "listen", "acme/triage/new-mail", "--until-empty"];

/// A sandbox with `acme` (see `common::acme`), a stream `new-mail` on the
/// dataset, and `n` comments uploaded after it.
async fn stream_of(n: usize) -> Cm {
    let cm = Cm::start().await;
    acme(&cm).await;
    cm.ok(&["create", "stream", "acme/triage/new-mail"]).await;
    let upload = cm
        .run_with_stdin(
            &["create", "comments", "acme/inbox"],
            comments(n).as_bytes(),
        )
        .await;
    assert_eq!(upload.code, 0, "{upload:?}");
    cm
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_listen_prints_each_result_once_and_advances() {
    let cm = stream_of(25).await;

    let first = cm
        .run(&[
            "stream",
            "listen",
            "acme/triage/new-mail",
            "--batch-size",
            "10",
            "--until-empty",
        ])
        .await;

    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(ids(&json_lines(&first.stdout)), {
        let mut ids: Vec<String> = (0..25).map(|i| format!("c{i}")).collect();
        ids.sort();
        ids
    });
    assert_eq!(first.stderr, "25 results\n");
    // Advanced past all of them: nothing is printed twice.
    let second = cm.run(LISTEN).await;
    assert_eq!((second.code, second.stdout.as_str()), (0, ""), "{second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_that_cannot_be_written_is_not_advanced_past() {
    let cm = stream_of(5).await;

    // stdout closed before cm writes: the write fails, cm stops.
    let mut closed = cm.command(LISTEN);
    let mut child = closed.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("cm: handler failed: cannot write to stdout"),
        "{stderr}"
    );

    // The batch was not advanced past: all five come again.
    let again = cm.run(LISTEN).await;
    assert_eq!(
        ids(&json_lines(&again.stdout)),
        ["c0", "c1", "c2", "c3", "c4"]
    );
    let after = cm.run(LISTEN).await;
    assert_eq!((after.code, after.stdout.as_str()), (0, ""), "{after:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn contexts_are_added_used_and_imported_from_re_without_secrets_in_files() {
    let cm = Cm::start().await;
    let config = cm.dir.join("config.toml");
    let url = cm.sandbox.base_url().to_owned();
    let token = cm.sandbox.token().to_owned();
    // No endpoint or token in the environment: the context gives them.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = common::bare(&cm.dir);
        command.args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        common::output(command, None)
    };

    let path = run(&["config", "path"], &[]).await;
    assert_eq!(path.stdout, format!("{}\n", config.display()));
    // The file the client reads, by cm-api's own rule (a padded value is trimmed).
    let padded = format!("  {}  ", cm.dir.join("other.toml").display());
    let other = run(&["config", "path"], &[("CM_API_CONFIG", &padded)]).await;
    assert_eq!(
        other.stdout,
        format!("{}\n", cm.dir.join("other.toml").display())
    );
    let added = run(
        &[
            "config",
            "add",
            "sbx",
            "--endpoint",
            &url,
            "--token-env",
            "SBX_TOKEN",
            "--project",
            "acme",
        ],
        &[],
    )
    .await;
    assert_eq!(added.code, 0, "{added:?}");
    let listed = run(&["config", "list"], &[]).await.stdout;
    assert_eq!(
        listed.lines().nth(1).unwrap(),
        format!("*  sbx      {url}  token in $SBX_TOKEN  acme")
    );
    assert_eq!(
        run(&["get", "projects", "-o", "json"], &[("SBX_TOKEN", &token)])
            .await
            .stdout
            .trim(),
        "[]"
    );
    // Without the variable, and no terminal to ask: an auth failure.
    let no_token = run(&["get", "projects"], &[]).await;
    assert_eq!(no_token.code, 3, "{no_token:?}");
    assert!(
        no_token.stderr.starts_with("cm: ") && no_token.stderr.contains("SBX_TOKEN"),
        "{no_token:?}"
    );

    let re_file = cm.file(
        "contexts.json",
        &json!({
            "current_context": "prod",
            "contexts": [
                {"name": "prod", "endpoint": url, "token": "re-secret-token", "accept_invalid_certificates": false, "proxy": null},
            ],
            "context_is_required": true,
        })
        .to_string(),
    );
    let imported = run(
        &["config", "import-re", "--file", re_file.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(imported.stderr.contains("imported context prod: its token is not copied (cm keeps no secret in files): set $CM_TOKEN_PROD"), "{imported:?}");
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(!file.contains("re-secret-token"), "{file}");
    let used = run(&["config", "use", "prod"], &[]).await;
    assert_eq!(used.code, 0, "{used:?}");
    assert_eq!(
        run(
            &["get", "projects", "-o", "json"],
            &[("CM_TOKEN_PROD", &token)]
        )
        .await
        .stdout
        .trim(),
        "[]"
    );
    let by_flag = run(
        &["-c", "sbx", "get", "projects", "-o", "json"],
        &[("SBX_TOKEN", &token)],
    )
    .await;
    assert_eq!(by_flag.code, 0, "{by_flag:?}");
    let unknown = run(&["config", "use", "nope"], &[]).await;
    assert_eq!(unknown.code, 4, "{unknown:?}");
    let removed = run(&["config", "remove", "sbx"], &[]).await;
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains("[profiles.sbx]")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_line_with_their_exit_status() {
    let cm = Cm::start().await;
    let mut wrong = cm.command(&["get", "projects"]);
    wrong.env("REINFER_TOKEN", "not-a-valid-token");
    let refused = common::output(wrong, None).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.starts_with("cm: list_projects: HTTP 401"),
        "{refused:?}"
    );
    assert!(!refused.stderr.contains("not-a-valid-token"));
    assert_eq!(refused.stderr.lines().count(), 1);

    let usage = cm.run(&["get", "streams", "no-slash"]).await;
    assert_eq!(usage.code, 2);
    assert_eq!(
        usage.stderr,
        "cm: the dataset must be project/name, got \"no-slash\"\n"
    );

    cm.sandbox
        .faults()
        .inject(
            Fault::status(500)
                .message("boom")
                .on("list_projects")
                .always(),
        )
        .unwrap();
    let api = cm.run(&["get", "projects"]).await;
    assert_eq!(api.code, 5, "{api:?}");
    assert_eq!(api.stderr.lines().count(), 1, "{api:?}");

    cm.sandbox.faults().clear();
    // -v shows cm-api's logs on stderr (a retry here); without it, nothing.
    cm.sandbox
        .faults()
        .inject(Fault::status(503).on("list_projects").times(1))
        .unwrap();
    let verbose = cm.run(&["-v", "get", "projects", "-o", "json"]).await;
    assert_eq!(verbose.code, 0, "{verbose:?}");
    assert!(
        verbose.stderr.contains("retryable status, retrying"),
        "{verbose:?}"
    );
    cm.sandbox
        .faults()
        .inject(Fault::status(503).on("list_projects").times(1))
        .unwrap();
    let quiet = cm.run(&["get", "projects", "-o", "json"]).await;
    assert_eq!((quiet.code, quiet.stderr.as_str()), (0, ""), "{quiet:?}");

    let completions = cm.run(&["completions", "bash"]).await;
    assert_eq!(completions.code, 0);
    assert!(
        completions.stdout.contains("_cm()"),
        "{}",
        &completions.stdout[..200]
    );
}
