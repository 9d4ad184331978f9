//! Users and their permissions, the OAuth token endpoint, and audit events,
//! driven through `cm_api::Client`.

use std::collections::BTreeSet;
use std::time::Duration;

use cm_api::types;
use cm_api::{AuthError, Client, ClientCredentials, Endpoint, Error, RetryPolicy};
mod common;

use cm_sandbox::Sandbox;
use common::{api_error, checked, client, client_with, project_and_source, typed};
use serde_json::{Value, json};

async fn current_user(client: &Client) -> types::User {
    client
        .get_current_user()
        .send()
        .await
        .expect("get_current_user")
        .into_inner()
        .user
}

async fn all_users(client: &Client) -> Vec<types::User> {
    client
        .list_all_users()
        .send()
        .await
        .expect("list_all_users")
        .into_inner()
        .users
}

async fn create_user(client: &Client, body: Value) -> Result<types::User, Error> {
    client
        .create_user()
        .body(typed::<types::CreateUserRequest>(body))
        .send()
        .await
        .map(|r| r.into_inner().user)
}

async fn sources(client: &Client) -> Vec<types::Source> {
    client
        .list_sources()
        .send()
        .await
        .expect("list_sources")
        .into_inner()
        .sources
}

async fn audit_events(client: &Client, body: Value) -> types::QueryAuditEventsResponse {
    client
        .query_audit_events()
        .body(typed::<types::QueryAuditEventsRequest>(body))
        .send()
        .await
        .expect("query_audit_events")
        .into_inner()
}

/// A client that authenticates with OAuth client credentials at the sandbox.
fn oauth_client(sandbox: &Sandbox, client_id: &str, client_secret: &str) -> Client {
    Client::builder()
        .env_lookup(|_| None)
        .config_path(std::env::temp_dir().join("cm-sandbox-tests-no-config.toml"))
        .endpoint(Endpoint::parse(sandbox.base_url()).expect("sandbox URL"))
        .client_credentials(
            ClientCredentials::new(client_id.to_owned(), client_secret.to_owned())
                .token_url(sandbox.token_url()),
        )
        .retry_policy(RetryPolicy::default().max_attempts(1))
        .build()
        .expect("client")
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn each_token_reads_back_its_own_user() {
    let sandbox = checked().await;
    let admin_client = client(&sandbox);
    let admin = current_user(&admin_client).await;
    assert_eq!(admin.id.as_deref(), Some(sandbox.admin_user_id()));
    assert_eq!(admin.username, "admin");
    assert_eq!(
        admin
            .global_permissions
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        cm_sandbox::all_permissions()
    );

    let reader_token = sandbox.mint_token(["sources-read", "voc-readonly"]);
    let reader = current_user(&client_with(&sandbox, &reader_token)).await;
    assert_ne!(reader.id, admin.id);
    assert_eq!(
        reader
            .global_permissions
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&["sources-read", "voc-readonly"])
    );
    assert!(reader.organisation_permissions.is_empty());

    // Both listings hold exactly the two users; the private one by id.
    let all = all_users(&admin_client).await;
    let ids: BTreeSet<_> = all.iter().filter_map(|u| u.id.clone()).collect();
    assert_eq!(
        ids,
        [admin.id.clone().unwrap(), reader.id.clone().unwrap()]
            .into_iter()
            .collect()
    );
    let public = admin_client
        .list_users()
        .send()
        .await
        .unwrap()
        .into_inner()
        .users;
    let mut names: Vec<_> = public.iter().map(|u| u.username.clone()).collect();
    names.sort();
    let mut want: Vec<_> = all.iter().map(|u| u.username.clone()).collect();
    want.sort();
    assert_eq!(names, want);
    assert!(
        public.iter().all(|u| u.id.is_none()),
        "the public listing has no ids"
    );

    let got = admin_client
        .get_user()
        .user_id(reader.id.clone().unwrap())
        .send()
        .await
        .unwrap()
        .into_inner()
        .user;
    assert_eq!(got, reader);
}

#[tokio::test]
async fn a_token_without_a_permission_gets_403_and_changes_nothing() {
    let sandbox = checked().await;
    let admin = client(&sandbox);
    project_and_source(&admin).await;
    let reader = client_with(&sandbox, &sandbox.mint_token(["sources-read"]));
    let users_before = all_users(&admin).await;
    let sources_before = sources(&admin).await;
    let events_before = audit_events(&admin, json!({})).await.audit_events;

    let (status, message) = api_error(
        create_user(
            &reader,
            json!({"user": {"username": "mallory", "email": "mallory@example.com"}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status, 403);
    assert!(message.contains("tenant-admin"), "{message}");

    let (status, message) = api_error(
        reader
            .create_source()
            .project("acme")
            .source_name("other")
            .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 403);
    assert!(message.contains("sources-admin"), "{message}");

    let (status, _) = api_error(
        reader
            .query_audit_events()
            .body(typed::<types::QueryAuditEventsRequest>(json!({})))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 403);

    // What it may do, it does.
    let got = reader
        .get_source()
        .project("acme")
        .source_name("inbox")
        .send()
        .await
        .unwrap()
        .into_inner()
        .source;
    assert_eq!(got.name, "inbox");

    assert_eq!(all_users(&admin).await, users_before);
    assert_eq!(sources(&admin).await, sources_before);
    assert_eq!(
        audit_events(&admin, json!({})).await.audit_events,
        events_before,
        "a refused request records no audit event"
    );
}

#[tokio::test]
async fn users_round_trip_with_permissions_per_project() {
    let sandbox = checked().await;
    let admin = client(&sandbox);
    project_and_source(&admin).await;
    admin
        .create_project()
        .project("other")
        .body(typed::<types::CreateProjectRequest>(json!({"project": {}})))
        .send()
        .await
        .unwrap();
    let count = all_users(&admin).await.len();

    let created = create_user(
        &admin,
        json!({"user": {
            "username": "asmith",
            "email": "anna.smith@acme.example",
            "organisation_permissions": {"acme": ["sources-read"]},
            "global_permissions": ["tenant-users-read"],
        }}),
    )
    .await
    .unwrap();
    let id = created.id.clone().expect("a created user has an id");
    assert_eq!(created.username, "asmith");
    assert_eq!(created.email.as_deref(), Some("anna.smith@acme.example"));
    assert!(!created.verified);
    assert_eq!(created.last_login_at, None);
    assert_eq!(created.global_permissions, vec!["tenant-users-read"]);
    assert_eq!(
        created.organisation_permissions["acme"],
        vec!["sources-read".to_owned()]
    );
    let read = admin
        .get_user()
        .user_id(id.clone())
        .send()
        .await
        .unwrap()
        .into_inner()
        .user;
    assert_eq!(read, created);
    assert_eq!(all_users(&admin).await.len(), count + 1);

    // A duplicate username is a 409; a missing project a 404; neither adds a user.
    let (status, _) = api_error(
        create_user(
            &admin,
            json!({"user": {"username": "asmith", "email": "someone@acme.example"}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status, 409);
    let (status, message) = api_error(
        create_user(
            &admin,
            json!({"user": {"username": "bob", "email": "bob@acme.example",
                            "organisation_permissions": {"nowhere": ["sources-read"]}}}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert!(message.contains("nowhere"), "{message}");
    assert_eq!(all_users(&admin).await.len(), count + 1);

    // Permissions hold in their project only.
    let anna = client_with(&sandbox, &sandbox.token_for_user(&id).unwrap());
    assert_eq!(current_user(&anna).await, read);
    let new_source = |client: &Client, project: &'static str| {
        let client = client.clone();
        async move {
            client
                .create_source()
                .project(project)
                .source_name("anna")
                .body(typed::<types::CreateSourceRequest>(json!({"source": {}})))
                .send()
                .await
        }
    };
    assert_eq!(
        api_error(new_source(&anna, "acme").await.unwrap_err()).0,
        403
    );

    // The update replaces the project permissions and keeps the global ones.
    let updated = admin
        .update_user()
        .user_id(id.clone())
        .body(typed::<types::UpdateUserRequest>(json!({"user": {
            "organisation_permissions": {"acme": ["sources-read", "sources-admin"]},
        }})))
        .send()
        .await
        .unwrap()
        .into_inner()
        .user;
    assert_eq!(
        updated.organisation_permissions["acme"]
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(&["sources-read", "sources-admin"])
    );
    assert_eq!(updated.global_permissions, vec!["tenant-users-read"]);
    assert_eq!(current_user(&anna).await, updated);
    new_source(&anna, "acme")
        .await
        .expect("sources-admin in acme");
    assert_eq!(
        api_error(new_source(&anna, "other").await.unwrap_err()).0,
        403
    );
    let names: Vec<_> = sources(&admin)
        .await
        .into_iter()
        .map(|s| format!("{}/{}", s.owner, s.name))
        .collect();
    assert_eq!(names, vec!["acme/anna", "acme/inbox"]);

    // Delete: gone from the listing and by id.
    admin
        .delete_user()
        .user_id(id.clone())
        .send()
        .await
        .unwrap();
    let (status, _) = api_error(
        admin
            .get_user()
            .user_id(id.clone())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert_eq!(all_users(&admin).await.len(), count);
    let (status, _) = api_error(admin.delete_user().user_id(id).send().await.unwrap_err());
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_deleted_users_tokens_and_applications_stop_working() {
    let sandbox = checked().await;
    let admin = client(&sandbox);
    let token = sandbox.mint_token(["sources-read"]);
    let user = client_with(&sandbox, &token);
    let id = current_user(&user).await.id.unwrap();
    let app = sandbox.client_credentials_for(&id).unwrap();
    current_user(&oauth_client(&sandbox, &app.client_id, &app.client_secret)).await;

    admin.delete_user().user_id(id).send().await.unwrap();

    let (status, message) = api_error(user.get_current_user().send().await.unwrap_err());
    assert_eq!(status, 401);
    assert!(message.contains("not valid"), "{message}");
    match oauth_client(&sandbox, &app.client_id, &app.client_secret)
        .get_current_user()
        .send()
        .await
        .unwrap_err()
    {
        Error::Auth(AuthError::Rejected { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("expected the identity server's rejection, got {other:?}"),
    }
    // The administrator is unaffected.
    assert_eq!(
        current_user(&admin).await.id.as_deref(),
        Some(sandbox.admin_user_id())
    );
}

#[tokio::test]
async fn client_credentials_run_a_call_end_to_end_and_a_wrong_secret_is_an_auth_error() {
    let sandbox = checked().await;
    let app = sandbox.client_credentials();
    let oauth = oauth_client(&sandbox, &app.client_id, &app.client_secret);
    project_and_source(&oauth).await;
    let me = current_user(&oauth).await;
    assert_eq!(me.id.as_deref(), Some(sandbox.admin_user_id()));
    assert!(me.last_login_at.is_some(), "a token grant is a login");
    let names: Vec<_> = sources(&client(&sandbox))
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["inbox"]);

    let wrong = oauth_client(&sandbox, &app.client_id, "not-the-secret");
    match wrong.get_current_user().send().await.unwrap_err() {
        Error::Auth(AuthError::Rejected { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (400, "invalid_client"));
        }
        other => panic!("expected Error::Auth(Rejected), got {other:?}"),
    }
    let unknown = oauth_client(&sandbox, "no-such-app", &app.client_secret);
    assert!(matches!(
        unknown.list_sources().send().await.unwrap_err(),
        Error::Auth(AuthError::Rejected { .. })
    ));
}

#[tokio::test]
async fn the_token_endpoint_answers_as_an_identity_server_and_tokens_expire() {
    let sandbox = Sandbox::builder()
        .validate_responses(true)
        .access_token_lifetime(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let app = sandbox.client_credentials();
    let http = reqwest::Client::new();
    let grant =
        |form: Vec<(&'static str, String)>| http.post(sandbox.token_url()).form(&form).send();

    let answer = grant(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", app.client_id.clone()),
        ("client_secret", app.client_secret.clone()),
        ("scope", "Ixp.ApiAccess".into()),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1);
    assert_eq!(body["scope"], "Ixp.ApiAccess");
    let access_token = body["access_token"].as_str().unwrap().to_owned();

    let me = |token: String| {
        http.get(format!("{}/auth/user", sandbox.base_url()))
            .bearer_auth(token)
            .send()
    };
    let answer = me(access_token.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let user: Value = answer.json().await.unwrap();
    assert_eq!(user["user"]["id"], sandbox.admin_user_id());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = me(access_token).await.unwrap();
    assert_eq!(answer.status(), 401);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["status"], "error");
    assert!(
        error["message"].as_str().unwrap().contains("expired"),
        "{error}"
    );

    // Refusals, each an OAuth error.
    for (form, status, code) in [
        (
            vec![
                ("grant_type", "password".to_owned()),
                ("client_id", app.client_id.clone()),
                ("client_secret", app.client_secret.clone()),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("client_id", app.client_id.clone()),
                ("client_secret", app.client_secret.clone()),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", app.client_id.clone()),
                ("client_secret", "wrong".to_owned()),
            ],
            400,
            "invalid_client",
        ),
    ] {
        let answer = grant(form).await.unwrap();
        assert_eq!(answer.status(), status);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(body.get("access_token").is_none());
    }
    let answer = http.get(sandbox.token_url()).send().await.unwrap();
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.headers()["allow"], "POST");
    assert_eq!(sandbox.schema_violations(), vec![]);
}

#[tokio::test]
async fn changes_appear_in_audit_events_newest_first_with_their_user_and_operation() {
    let sandbox = checked().await;
    let admin = client(&sandbox);
    let admin_id = sandbox.admin_user_id().to_owned();
    let source_id = project_and_source(&admin).await;
    let anna = create_user(
        &admin,
        json!({"user": {"username": "asmith", "email": "anna@acme.example"}}),
    )
    .await
    .unwrap()
    .id
    .unwrap();
    let writer_token = sandbox.mint_token(["sources-admin"]);
    let writer = client_with(&sandbox, &writer_token);
    let writer_id = current_user(&writer).await.id.unwrap();
    writer
        .update_source()
        .project("acme")
        .source_name("inbox")
        .body(typed::<types::UpdateSourceRequest>(
            json!({"source": {"title": "Support inbox"}}),
        ))
        .send()
        .await
        .unwrap();
    // Reads record nothing.
    sources(&admin).await;

    let page = audit_events(&admin, json!({})).await;
    let seen: Vec<(String, String)> = page
        .audit_events
        .iter()
        .map(|e| {
            (
                e.event_type.clone().unwrap(),
                e.actor_user_id.clone().unwrap(),
            )
        })
        .collect();
    let want = |op: &str, who: &str| (op.to_owned(), who.to_owned());
    assert_eq!(
        seen,
        vec![
            want("update_source", &writer_id),
            want("create_user", &admin_id),
            want("create_source", &admin_id),
            want("create_project", &admin_id),
        ]
    );
    let events = &page.audit_events;
    let times: Vec<_> = events.iter().map(|e| e.timestamp.unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "newest first: {times:?}"
    );
    let project_id = admin
        .get_project()
        .project("acme")
        .send()
        .await
        .unwrap()
        .into_inner()
        .project
        .id
        .expect("a project id");
    assert_eq!(events[0].source_ids, vec![source_id.clone()]);
    assert_eq!(events[0].project_ids, vec![project_id.clone()]);
    assert_eq!(events[1].user_ids, vec![anna.clone()]);
    assert_eq!(events[2].source_ids, vec![source_id.clone()]);
    assert_eq!(events[3].project_ids, vec![project_id.clone()]);
    assert!(
        events.iter().all(
            |e| e.tenant_ids.len() == 1 && e.actor_tenant_id.as_ref() == Some(&e.tenant_ids[0])
        )
    );
    // The referenced resources, once each, as they are now.
    let users: BTreeSet<_> = page.users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(users, set(&[&admin_id, &writer_id, &anna]));
    assert_eq!(page.sources.len(), 1);
    assert_eq!(page.sources[0].title, "Support inbox");
    assert_eq!(
        page.sources[0].project_id.as_deref(),
        Some(project_id.as_str())
    );
    assert_eq!(page.projects.len(), 1);
    assert_eq!(page.tenants.len(), 1);
    assert_eq!(page.continuation, None);

    // Pages of two, and the same events.
    let first = audit_events(&admin, json!({"limit": 2})).await;
    let next = first.continuation.clone().expect("a second page");
    let second = audit_events(&admin, json!({"limit": 2, "continuation": next})).await;
    assert_eq!(second.continuation, None);
    let paged: Vec<_> = first
        .audit_events
        .into_iter()
        .chain(second.audit_events)
        .collect();
    assert_eq!(&paged, events);

    // A timestamp range, bounds inclusive.
    let ranged = audit_events(
        &admin,
        json!({"filter": {"timestamp": {
            "minimum": events[2].timestamp.unwrap(),
            "maximum": events[1].timestamp.unwrap(),
        }}}),
    )
    .await;
    assert_eq!(ranged.audit_events, events[1..3].to_vec());

    // Another filter is not supported: 501 naming it.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/audit_events/query", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        .json(&json!({"filter": {"event_type": "create_source"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 501);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("event_type"),
        "{body}"
    );
    let (status, _) = api_error(
        admin
            .query_audit_events()
            .body(typed::<types::QueryAuditEventsRequest>(
                json!({"continuation": "garbage"}),
            ))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    // Queries record nothing.
    assert_eq!(audit_events(&admin, json!({})).await.audit_events, *events);
}
