//! Buckets and their emails, `add_comments` and `sync_raw_emails`, driven
//! through `cm_api::Client`: every test reads back the state it made.

use std::collections::BTreeSet;

use cm_api::Client;
use cm_api::types;
mod common;

use common::{api_error, checked, client, comment, project_and_source, typed};
use serde_json::{Value, json};

async fn create_bucket(client: &Client, name: &str) -> types::Bucket {
    client
        .create_bucket()
        .project("acme")
        .bucket_name(name)
        .body(typed::<types::CreateBucketRequest>(
            json!({"bucket": {"title": "Support mailbox", "bucket_type": "emails"}}),
        ))
        .send()
        .await
        .expect("create_bucket")
        .into_inner()
        .bucket
}

fn email(id: &str, timestamp: &str, subject: &str) -> Value {
    json!({
        "id": id,
        "mailbox": "support@acme.example",
        "timestamp": timestamp,
        "mime_content": format!(
            "From: jane@customer.example\r\nTo: support@acme.example\r\nSubject: {subject}\r\n\r\nHello\r\n"
        ),
        "metadata": {"folder": ["Inbox"], "is_read": false, "received_at": "2026-03-04T09:15:02Z"},
    })
}

async fn add_emails(client: &Client, emails: Vec<Value>) {
    client
        .add_bucket_emails()
        .project("acme")
        .bucket_name("mail")
        .body(typed::<types::AddEmailsRequest>(json!({"emails": emails})))
        .send()
        .await
        .expect("add_bucket_emails");
}

async fn get_email(client: &Client, id: &str) -> Vec<types::Email> {
    client
        .get_bucket_email()
        .project("acme")
        .bucket_name("mail")
        .id(id)
        .send()
        .await
        .expect("get_bucket_email")
        .into_inner()
        .emails
}

async fn email_count(client: &Client) -> Value {
    let statistics = client
        .get_bucket_statistics()
        .project("acme")
        .bucket_name("mail")
        .send()
        .await
        .expect("get_bucket_statistics")
        .into_inner()
        .statistics;
    serde_json::to_value(statistics).unwrap()["count"].clone()
}

#[tokio::test]
async fn buckets_read_back_update_list_and_delete() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let created = create_bucket(&client, "mail").await;
    assert_eq!(
        (created.owner.as_str(), created.name.as_str()),
        ("acme", "mail")
    );
    assert_eq!(created.title, "Support mailbox");

    let by_name = client
        .get_bucket()
        .project("acme")
        .bucket_name("mail")
        .send()
        .await
        .unwrap()
        .into_inner()
        .bucket;
    let by_id = client
        .get_bucket_by_id()
        .bucket_id(created.id.as_str())
        .send()
        .await
        .unwrap()
        .into_inner()
        .bucket;
    assert_eq!(by_name, created);
    assert_eq!(by_id, created);

    let again = client
        .create_bucket()
        .project("acme")
        .bucket_name("mail")
        .body(typed::<types::CreateBucketRequest>(json!({"bucket": {}})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(again).0, 409);
    let no_project = client
        .create_bucket()
        .project("nope")
        .bucket_name("mail")
        .body(typed::<types::CreateBucketRequest>(json!({"bucket": {}})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(no_project).0, 404);

    let updated = client
        .update_bucket()
        .project("acme")
        .bucket_name("mail")
        .body(typed::<types::UpdateBucketRequest>(json!({"bucket": {
            "title": "Support (EMEA)",
            "last_updated_by": {"config_owner": "acme", "config_key": "exchange", "shard_index": 0, "num_shards": 2},
        }})))
        .send()
        .await
        .unwrap()
        .into_inner()
        .bucket;
    assert_eq!(updated.title, "Support (EMEA)");
    assert_eq!(
        serde_json::to_value(&updated.last_updated_by).unwrap(),
        json!({"config_owner": "acme", "config_key": "exchange", "shard_index": 0, "num_shards": 2})
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);

    let other = create_bucket(&client, "archive").await;
    let all = client
        .list_buckets()
        .send()
        .await
        .unwrap()
        .into_inner()
        .buckets;
    let in_project = client
        .list_project_buckets()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(all, vec![other.clone(), updated.clone()]);
    assert_eq!(in_project, all);

    client
        .delete_bucket_by_id()
        .bucket_id(created.id.as_str())
        .send()
        .await
        .unwrap();
    let gone = client
        .get_bucket_by_id()
        .bucket_id(created.id.as_str())
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
    let gone = client
        .get_bucket()
        .project("acme")
        .bucket_name("mail")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(gone).0, 404);
    let all = client
        .list_buckets()
        .send()
        .await
        .unwrap()
        .into_inner()
        .buckets;
    assert_eq!(all, vec![other]);
    let twice = client
        .delete_bucket_by_id()
        .bucket_id(created.id.as_str())
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(twice).0, 404);
}

#[tokio::test]
async fn a_bucket_feeding_a_source_is_409_to_delete_until_detached() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let bucket = create_bucket(&client, "mail").await;

    let unknown = client
        .create_source()
        .project("acme")
        .source_name("fed")
        .body(typed::<types::CreateSourceRequest>(
            json!({"source": {"bucket_id": "0000000000000000"}}),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(unknown).0, 422);
    let fed = client
        .create_source()
        .project("acme")
        .source_name("fed")
        .body(typed::<types::CreateSourceRequest>(
            json!({"source": {"bucket_id": bucket.id}}),
        ))
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(fed.bucket_id.as_deref(), Some(bucket.id.as_str()));

    let refused = client
        .delete_bucket_by_id()
        .bucket_id(bucket.id.as_str())
        .send()
        .await
        .unwrap_err();
    let (status, message) = api_error(refused);
    assert_eq!(status, 409);
    assert!(message.contains("acme/fed"), "{message}");
    client
        .get_bucket_by_id()
        .bucket_id(bucket.id.as_str())
        .send()
        .await
        .expect("the bucket is still there");

    // cm-api's typed `SourceUpdate` cannot send `bucket_id: null` (the
    // field is skipped when `None`), so detach with a raw request.
    let detached = reqwest::Client::new()
        .post(format!("{}/api/v1/sources/acme/fed", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        .json(&json!({"source": {"bucket_id": null}}))
        .send()
        .await
        .unwrap();
    assert_eq!(detached.status(), 200);
    let source = client
        .get_source()
        .project("acme")
        .source_name("fed")
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(source.bucket_id, None);
    client
        .delete_bucket_by_id()
        .bucket_id(bucket.id.as_str())
        .send()
        .await
        .expect("a detached bucket deletes");
}

#[tokio::test]
async fn bucket_emails_upsert_read_back_count_and_delete() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    create_bucket(&client, "mail").await;
    let first = email("<1@customer.example>", "2026-03-04T09:15:00Z", "Refund");
    let second = email("<2@customer.example>", "2026-03-04T10:00:00Z", "Invoice");
    add_emails(&client, vec![first.clone(), second.clone()]).await;
    assert_eq!(
        email_count(&client).await,
        json!({"kind": "exact", "value": 2})
    );

    let got = get_email(&client, "<1@customer.example>").await;
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(got.id, "<1@customer.example>");
    assert_eq!(got.mailbox.as_deref(), Some("support@acme.example"));
    assert_eq!(got.mime_content.as_deref(), first["mime_content"].as_str());
    assert_eq!(
        got.timestamp.map(|t| t.to_rfc3339()),
        Some("2026-03-04T09:15:00+00:00".to_owned())
    );
    let metadata = got.metadata.as_ref().expect("metadata");
    assert_eq!(metadata.folder, vec!["Inbox".to_owned()]);
    assert_eq!(metadata.is_read, Some(false));
    assert!(got.created_at.is_some());
    assert_eq!(got.updated_at, None);
    assert_eq!(get_email(&client, "<none@x>").await, vec![]);

    // The same id again replaces; an identical email stays as it was.
    let changed = email(
        "<1@customer.example>",
        "2026-03-04T09:15:00Z",
        "Refund (again)",
    );
    let third = email("<3@customer.example>", "2026-03-04T11:00:00Z", "Thanks");
    add_emails(&client, vec![changed.clone(), second.clone(), third]).await;
    assert_eq!(
        email_count(&client).await,
        json!({"kind": "exact", "value": 3})
    );
    let replaced = get_email(&client, "<1@customer.example>").await.remove(0);
    assert_eq!(
        replaced.mime_content.as_deref(),
        changed["mime_content"].as_str()
    );
    assert_eq!(replaced.created_at, got.created_at);
    assert!(replaced.updated_at.is_some());
    let same = get_email(&client, "<2@customer.example>").await.remove(0);
    assert_eq!(same.updated_at, None);

    // A rejected batch stores nothing.
    let raw = reqwest::Client::new()
        .put(format!(
            "{}/api/_private/buckets/acme/mail/emails",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .json(&json!({"emails": [
            email("<6@x>", "2026-03-04T11:00:00Z", "fine"),
            email("<7@x>", "yesterday", "bad timestamp"),
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 422);
    assert!(raw.text().await.unwrap().contains("emails[1].timestamp"));
    assert_eq!(get_email(&client, "<6@x>").await, vec![]);

    client
        .delete_bucket_emails()
        .project("acme")
        .bucket_name("mail")
        .id(vec![
            "<1@customer.example>".to_owned(),
            "<never@x>".to_owned(),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(get_email(&client, "<1@customer.example>").await, vec![]);
    assert_eq!(
        email_count(&client).await,
        json!({"kind": "exact", "value": 2})
    );
}

#[tokio::test]
async fn bucket_email_pages_cover_each_email_once() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    create_bucket(&client, "mail").await;
    let ids: BTreeSet<String> = (0..23).map(|i| format!("<{i}@customer.example>")).collect();
    add_emails(
        &client,
        ids.iter()
            .map(|id| email(id, "2026-03-04T09:15:00Z", "Paged"))
            .collect(),
    )
    .await;

    for query in [false, true] {
        let mut seen = Vec::new();
        let mut continuation: Option<String> = None;
        let mut pages = 0;
        loop {
            let body = typed::<types::BucketEmailsPageRequest>(
                json!({"limit": 5, "continuation": continuation}),
            );
            let page = if query {
                client
                    .query_bucket_emails()
                    .project("acme")
                    .bucket_name("mail")
                    .body(body)
                    .send()
                    .await
            } else {
                client
                    .list_bucket_emails()
                    .project("acme")
                    .bucket_name("mail")
                    .body(body)
                    .send()
                    .await
            }
            .unwrap()
            .into_inner();
            pages += 1;
            assert!(page.emails.len() <= 5);
            seen.extend(page.emails.into_iter().map(|e| e.id));
            if query {
                assert_eq!(page.more_results, Some(page.continuation.is_some()));
            }
            match page.continuation {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 5, "23 emails in pages of 5");
        assert_eq!(seen.len(), ids.len(), "each email once");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids);
    }

    // Options the sandbox does not have are 501, a bad page 422.
    let raw = |path: &'static str, body: Value| {
        let url = format!(
            "{}/api/_private/buckets/acme/mail/{path}",
            sandbox.base_url()
        );
        let token = sandbox.token().to_owned();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let filtered = raw(
        "emails/query",
        json!({"limit": 5, "filter": {"mailbox": "x"}}),
    )
    .await;
    assert_eq!(filtered.status(), 501);
    assert!(filtered.text().await.unwrap().contains("`filter`"));
    assert_eq!(raw("emails", json!({"limit": 0})).await.status(), 422);
    assert_eq!(
        raw("emails", json!({"continuation": "not-ours"}))
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn add_comments_adds_new_ids_and_an_existing_id_changes_nothing() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let add = |comments: Vec<types::CommentNew>| {
        client
            .add_comments()
            .project("acme")
            .source_name("inbox")
            .body(types::AddCommentsRequest { comments })
            .send()
    };
    let sent = comment("c1", "2026-03-01T10:00:00Z", "Where is my refund?");
    add(vec![sent.clone()]).await.expect("add_comments");
    let got = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("c1")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    assert_eq!(
        serde_json::to_value(&got.messages).unwrap(),
        serde_json::to_value(&sent.messages).unwrap()
    );
    assert_eq!(got.timestamp, sent.timestamp);

    let refused = add(vec![
        comment("c2", "2026-03-01T11:00:00Z", "New"),
        comment("c1", "2026-03-01T10:00:00Z", "Changed"),
    ])
    .await
    .unwrap_err();
    let (status, message) = api_error(refused);
    assert_eq!(status, 409);
    assert!(message.contains("comments[1].id"), "{message}");
    let twice = add(vec![
        comment("c3", "2026-03-01T11:00:00Z", "a"),
        comment("c3", "2026-03-01T11:00:00Z", "b"),
    ])
    .await
    .unwrap_err();
    assert_eq!(api_error(twice).0, 409);

    let listed = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comments;
    let listed: Vec<(String, String)> = listed
        .into_iter()
        .map(|c| (c.id, c.messages[0].body.text.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![("c1".to_owned(), "Where is my refund?".to_owned())]
    );
}

fn raw_email(headers: &str, plain: Option<&str>, html: Option<&str>) -> Value {
    let mut body = json!({});
    if let Some(plain) = plain {
        body["plain"] = plain.into();
    }
    if let Some(html) = html {
        body["html"] = html.into();
    }
    json!({"headers": {"raw": headers}, "body": body})
}

async fn sync_raw(
    client: &Client,
    body: Value,
) -> Result<types::SyncRawEmailsResponse, cm_api::Error> {
    client
        .sync_raw_emails()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::SyncRawEmailsRequest>(body))
        .send()
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn raw_emails_become_comments_with_the_parsed_fields() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let headers = "Message-ID: <48213@customer.example>\r\n\
        From: \"Jane Doe\" <jane.doe@customer.example>\r\n\
        To: support@acme.example, \"Billing\" <billing@acme.example>\r\n\
        Cc: boss@customer.example\r\n\
        Subject: =?UTF-8?Q?Remboursement_d=C3=A9j=C3=A0_demand=C3=A9?=\r\n\
        Date: Wed, 04 Mar 2026 10:15:00 +0100\r\n\
        References: <48000@customer.example> <48100@customer.example>\r\n";
    let documents = json!([
        {
            "comment_id": "mail-1",
            "user_properties": {"string:Mailbox": "support@acme.example"},
            "raw_email": raw_email(headers, Some("Hello, where is my refund?"), Some("<p>ignored</p>")),
        },
        {
            // No comment id: the Message-ID is the id; HTML only: its text.
            "raw_email": raw_email(
                "Message-ID: <777@customer.example>\r\nFrom: bob@customer.example\r\nSubject: Hi\r\n",
                None,
                Some("<html><head><style>p {}</style></head><body><p>Hello <b>there</b> &amp; bye</p></body></html>"),
            ),
        },
    ]);
    let first = sync_raw(
        &client,
        json!({"documents": documents, "transform_tag": "generic.0.CONVKER5", "include_comments": true}),
    )
    .await
    .unwrap();
    assert_eq!((first.new, first.updated, first.unchanged), (2, 0, 0));
    assert_eq!(first.comments.len(), 2);

    let get = |id: &'static str| {
        client
            .get_comment()
            .project("acme")
            .source_name("inbox")
            .comment_id(id)
            .send()
    };
    let one = get("mail-1").await.unwrap().into_inner().comment;
    assert_eq!(first.comments[0], one);
    let message = &one.messages[0];
    assert_eq!(message.from.as_deref(), Some("jane.doe@customer.example"));
    assert_eq!(
        message.to,
        vec![
            "support@acme.example".to_owned(),
            "billing@acme.example".to_owned()
        ]
    );
    assert_eq!(message.cc, vec!["boss@customer.example".to_owned()]);
    assert_eq!(
        message.subject.as_ref().map(|s| s.text.as_str()),
        Some("Remboursement déjà demandé")
    );
    assert_eq!(message.body.text, "Hello, where is my refund?");
    assert_eq!(
        message.sent_at.map(|t| t.to_rfc3339()),
        Some("2026-03-04T09:15:00+00:00".to_owned())
    );
    assert_eq!(one.timestamp, message.sent_at);
    assert_eq!(one.thread_id.as_deref(), Some("48000@customer.example"));
    assert_eq!(
        serde_json::to_value(&one.user_properties).unwrap(),
        json!({"string:Mailbox": "support@acme.example"})
    );

    let two = get("777@customer.example")
        .await
        .unwrap()
        .into_inner()
        .comment;
    let text = &two.messages[0].body.text;
    assert!(
        text.contains("Hello") && text.contains("there") && text.contains("& bye"),
        "{text:?}"
    );
    assert!(!text.contains('<') && !text.contains("p {}"), "{text:?}");
    assert_eq!(two.thread_id.as_deref(), Some("777@customer.example"));

    // The same emails again: unchanged; a new body: text changed.
    let again = sync_raw(
        &client,
        json!({"documents": documents, "transform_tag": "generic.0.CONVKER5"}),
    )
    .await
    .unwrap();
    assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(again.comments, vec![]);
    let mut changed = documents.clone();
    changed[0]["raw_email"]["body"]["plain"] = "Refund received, thanks.".into();
    changed[1]["raw_email"]["body"] = json!({"html": "<p>Hello there &amp; bye</p>"});
    let third = sync_raw(
        &client,
        json!({"documents": changed, "transform_tag": "generic.0.CONVKER5"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (third.new, third.updated_text_changed, third.unchanged),
        (0, 1, 1)
    );
    let one = get("mail-1").await.unwrap().into_inner().comment;
    assert_eq!(one.messages[0].body.text, "Refund received, thanks.");
}

#[tokio::test]
async fn raw_emails_need_a_transform_tag_that_matches_the_source() {
    let sandbox = checked().await;
    let client = client(&sandbox);
    project_and_source(&client).await;
    let documents = json!([{
        "comment_id": "m1",
        "raw_email": raw_email("From: a@b.example\r\nSubject: x\r\n", Some("hi"), None),
    }]);

    let none = sync_raw(&client, json!({"documents": documents}))
        .await
        .unwrap_err();
    let (status, message) = api_error(none);
    assert_eq!(status, 422);
    assert!(message.contains("transform_tag"), "{message}");

    client
        .update_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::UpdateSourceRequest>(
            json!({"source": {"email_transform_tag": "generic.1.CONVKER5"}}),
        ))
        .send()
        .await
        .unwrap();
    let other = sync_raw(
        &client,
        json!({"documents": documents, "transform_tag": "generic.0.CONVKER5"}),
    )
    .await
    .unwrap_err();
    assert_eq!(api_error(other).0, 422);
    // A bad document anywhere rejects the whole request.
    let bad = sync_raw(
        &client,
        json!({"documents": [
            documents[0].clone(),
            {"raw_email": raw_email("From: a@b.example\r\n", Some("no id"), None)},
        ]}),
    )
    .await
    .unwrap_err();
    let (status, message) = api_error(bad);
    assert_eq!(status, 422);
    assert!(message.contains("documents[1].comment_id"), "{message}");
    let listed = client
        .list_source_comments()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comments;
    assert!(listed.is_empty(), "rejected requests stored {listed:?}");

    // The source's own tag applies when the request names none.
    let ok = sync_raw(&client, json!({"documents": documents}))
        .await
        .unwrap();
    assert_eq!(ok.new, 1);
    let parsed_headers = sync_raw(
        &client,
        json!({"documents": [{
            "comment_id": "m2",
            "raw_email": {
                "headers": {"parsed": {"From": "c@d.example", "To": ["e@f.example", "g@h.example"], "Subject": "Parsed"}},
                "body": {"plain": "from a map"},
            },
        }]}),
    )
    .await
    .unwrap();
    assert_eq!(parsed_headers.new, 1);
    let m2 = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("m2")
        .send()
        .await
        .unwrap()
        .into_inner()
        .comment;
    assert_eq!(m2.messages[0].from.as_deref(), Some("c@d.example"));
    assert_eq!(
        m2.messages[0].to,
        vec!["e@f.example".to_owned(), "g@h.example".to_owned()]
    );
    assert_eq!(
        m2.messages[0].subject.as_ref().map(|s| s.text.as_str()),
        Some("Parsed")
    );
}

#[tokio::test]
async fn bucket_routes_need_their_permissions() {
    let sandbox = checked().await;
    let admin = client(&sandbox);
    project_and_source(&admin).await;
    let reader = common::client_with(&sandbox, &sandbox.mint_token(["buckets-read"]));
    let refused = reader
        .create_bucket()
        .project("acme")
        .bucket_name("mail")
        .body(typed::<types::CreateBucketRequest>(json!({"bucket": {}})))
        .send()
        .await
        .unwrap_err();
    let (status, message) = api_error(refused);
    assert_eq!(status, 403);
    assert!(message.contains("buckets-admin"), "{message}");
    assert_eq!(
        reader
            .list_buckets()
            .send()
            .await
            .unwrap()
            .into_inner()
            .buckets,
        vec![]
    );
    create_bucket(&admin, "mail").await;
    let refused = reader
        .add_bucket_emails()
        .project("acme")
        .bucket_name("mail")
        .body(typed::<types::AddEmailsRequest>(json!({"emails": []})))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_error(refused).0, 403);
    assert_eq!(
        email_count(&reader).await,
        json!({"kind": "exact", "value": 0})
    );
}
