//! Rich-text markup (`include_markup`) as HTML emails produce it: lists,
//! tables with header rows and captions, links without a target, images
//! without a source, and nesting far deeper than serde_json's default
//! limit of 128 levels.

use cm_api::types::MarkupNode;
use cm_api_contract_tests::cases::case;
use cm_api_contract_tests::harness::{
    Answer, SERVER_TIMING, TOKEN, client_for, exercise, normalised,
};
use serde_json::Value;

const HTML_EMAIL: &str = include_str!("../fixtures/html_email_markup.json");

/// Decoded through the client and encoded again, the markup of a realistic
/// HTML email has every node and every field it came with: nothing is
/// dropped, nothing changes meaning.
#[tokio::test]
async fn html_email_markup_survives_the_round_trip() {
    let sent: Value = serde_json::from_str(HTML_EMAIL).expect("fixture is JSON");
    let got = exercise(&case("get_comment"), Answer::json(200, &sent))
        .await
        .expect("the markup decodes");
    assert_eq!(normalised(&got), normalised(&sent));
}

/// What each kind of node holds is reachable through the generated types,
/// the table cell text and the null link target included.
#[tokio::test]
async fn every_markup_field_is_typed() {
    let server = httpmock::MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/sources/acme/inbox/comments/0123456789abcdef")
                .header("authorization", format!("Bearer {TOKEN}"));
            then.status(200)
                .header("content-type", "application/json")
                .header("server-timing", SERVER_TIMING)
                .body(HTML_EMAIL);
        })
        .await;
    let client = client_for(&server);
    let response = client
        .get_comment()
        .project("acme")
        .source_name("inbox")
        .comment_id("0123456789abcdef")
        .send()
        .await
        .expect("the markup decodes");
    let message = &response.comment.messages[0];
    let markup = &message.body.text_markup;
    assert_eq!(markup.len(), 8);

    let bullets = &markup[1];
    assert_eq!(
        (bullets.kind.as_str(), bullets.list_kind.as_deref()),
        ("list", Some("ul"))
    );
    assert_eq!(bullets.items.len(), 2);
    assert_eq!(span_of(&bullets.items[1].children[0]), (34, 42));
    assert_eq!(markup[3].list_kind.as_deref(), Some("ol"));

    let table = &markup[4];
    assert_eq!(table.borderless, Some(true));
    assert_eq!(span_of(&table.captions[0].children[0]), (74, 80));
    let [header, body] = table.rows.as_slice() else {
        panic!("two rows: {:?}", table.rows)
    };
    assert_eq!(header.section.as_deref(), Some("thead"));
    assert_eq!(header.cells[1].cell_kind.as_deref(), Some("th"));
    assert_eq!(span_of(&header.cells[1].children[0]), (67, 73));
    assert_eq!(body.section.as_deref(), Some("tbody"));
    assert_eq!((body.cells[0].rowspan, body.cells[0].colspan), (2, 1));
    assert_eq!((body.cells[1].rowspan, body.cells[1].colspan), (1, 3));
    assert_eq!(body.cells[0].children[0].style_kind.as_deref(), Some("b"));
    assert_eq!(span_of(&body.cells[0].children[0].children[0]), (74, 79));

    assert_eq!(
        (markup[5].kind.as_str(), markup[5].href.as_deref()),
        ("link", None)
    );
    assert_eq!(span_of(&markup[5].children[0]), (85, 93));
    let [logo, inline] = markup[6].children.as_slice() else {
        panic!("two images")
    };
    assert_eq!(
        (logo.src.as_deref(), logo.alt.as_deref()),
        (None, Some("Acme logo"))
    );
    assert_eq!(
        (inline.src.as_deref(), inline.alt.as_deref()),
        (Some("cid:logo@acme.example"), None)
    );
    assert_eq!(markup[7].break_kind.as_deref(), Some("hr"));

    let signature = message.signature.as_ref().expect("a signature");
    assert_eq!(
        span_of(&signature.text_markup[0].rows[0].cells[1].children[0]),
        (11, 19)
    );
}

fn span_of(node: &MarkupNode) -> (i64, i64) {
    let span = node
        .span
        .as_ref()
        .unwrap_or_else(|| panic!("{node:?} has no span"));
    (span.char_start, span.char_end)
}

/// `depth` nested `style` nodes around one text node, as a forwarded chain
/// of Outlook-made HTML nests them.
fn deeply_nested_comment(depth: usize) -> String {
    let open = r#"{"kind":"style","style_kind":"i","children":["#;
    let text = r#"{"kind":"text","span":{"char_start":0,"char_end":2,"utf16_byte_start":0,"utf16_byte_end":4}}"#;
    format!(
        r#"{{"status":"ok","comment":{{"uid":"s.c","id":"c","messages":[{{"body":{{"text":"hi","text_markup":[{}{}{}]}}}}]}}}}"#,
        open.repeat(depth),
        text,
        "]}".repeat(depth)
    )
}

/// 1,000 levels of markup (2,000 JSON levels) decode on a default tokio
/// worker thread: no "recursion limit exceeded", no stack overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_a_thousand_levels_deep_decodes_on_a_tokio_worker() {
    const DEPTH: usize = 1_000;
    let server = httpmock::MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/v1/sources/acme/inbox/comments/c");
            then.status(200)
                .header("content-type", "application/json")
                .body(deeply_nested_comment(DEPTH));
        })
        .await;
    let client = client_for(&server);
    // Spawned, so that the decoding runs on a worker with tokio's default stack.
    let depth = tokio::spawn(async move {
        let response = client
            .get_comment()
            .project("acme")
            .source_name("inbox")
            .comment_id("c")
            .send()
            .await
            .expect("deep markup decodes");
        let mut node = &response.comment.messages[0].body.text_markup[0];
        let mut depth = 0;
        while let Some(child) = node.children.first() {
            node = child;
            depth += 1;
        }
        assert_eq!(node.kind, "text");
        // Dropping a tree this deep recurses once per level; do it here too.
        drop(response);
        depth
    })
    .await
    .expect("the decoding task neither panicked nor overflowed its stack");
    assert_eq!(depth, DEPTH);
}
