//! The reference at `/v1/openapi.json`: generated from the route table
//! that also builds the router, so it lists exactly the routes served,
//! with parameters, bodies and responses typed as the handlers parse and
//! answer them.

use crate::harness::{Nats, Server};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every route the server has. A route added without adding it here, or
/// left out of the document, fails `openapi_lists_every_route_typed`.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
    ("post", "/v1/workspaces"),
    ("post", "/v1/workspaces/{ws}/users"),
    ("get", "/v1/me"),
    ("get", "/v1/users"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("post", "/v1/users/{id}/deactivate"),
    ("post", "/v1/users/{id}/reactivate"),
    ("patch", "/v1/users/{id}"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/logout"),
    ("post", "/v1/auth/invite"),
    ("post", "/v1/users/{id}/invite"),
    ("put", "/v1/users/{id}/password"),
    ("put", "/v1/me/password"),
    ("get", "/v1/channels"),
    ("post", "/v1/channels"),
    ("get", "/v1/channels/{id}"),
    ("patch", "/v1/channels/{id}"),
    ("get", "/v1/channels/{id}/members"),
    ("post", "/v1/channels/{id}/members"),
    ("delete", "/v1/channels/{id}/members/{user}"),
    ("post", "/v1/channels/{id}/join"),
    ("post", "/v1/channels/{id}/leave"),
    ("post", "/v1/channels/{id}/archive"),
    ("post", "/v1/dms"),
    ("post", "/v1/admin/exports"),
    ("get", "/v1/admin/exports/{id}"),
    ("get", "/v1/admin/exports/{id}/{file}"),
    ("post", "/v1/messages"),
    ("get", "/v1/channels/{id}/messages"),
    ("get", "/v1/channels/{id}/events"),
    ("patch", "/v1/messages/{id}"),
    ("delete", "/v1/messages/{id}"),
    ("post", "/v1/messages/{id}/reactions"),
    ("delete", "/v1/messages/{id}/reactions/{emoji}"),
    ("get", "/v1/messages/{id}/replies"),
    ("post", "/v1/channels/{id}/pins/{message_id}"),
    ("delete", "/v1/channels/{id}/pins/{message_id}"),
    ("get", "/v1/channels/{id}/pins"),
    ("post", "/v1/channels/{id}/read"),
    ("post", "/v1/channels/{id}/unread"),
    ("get", "/v1/unreads"),
    ("post", "/v1/files"),
    ("get", "/v1/files/{id}"),
    ("get", "/v1/realtime"),
    ("post", "/v1/realtime/tickets"),
    ("get", "/v1/sse"),
    ("get", "/v1/presence"),
    ("put", "/v1/admin/push"),
    ("get", "/v1/admin/push"),
    ("delete", "/v1/admin/push"),
    ("get", "/v1/admin/push/dead"),
    ("get", "/v1/me/preferences"),
    ("put", "/v1/me/preferences"),
    ("get", "/v1/channels/{id}/preferences"),
    ("put", "/v1/channels/{id}/preferences"),
    ("get", "/v1/notifications"),
    ("post", "/v1/notifications/ack"),
    ("get", "/v1/search"),
    ("get", "/v1/admin/audit"),
    ("get", "/v1/admin/retention"),
    ("put", "/v1/admin/retention"),
    ("post", "/v1/admin/retention/run"),
    ("get", "/v1/admin/legal-holds"),
    ("post", "/v1/admin/legal-holds"),
    ("delete", "/v1/admin/legal-holds/{id}"),
    ("post", "/v1/admin/erasures"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Follows a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "{r} resolves");
            target
        }
        None => schema,
    }
}

/// `type` is `t`, or (3.1) a list holding `t`.
fn has_type(schema: &Value, t: &str) -> bool {
    match &schema["type"] {
        Value::String(s) => s == t,
        Value::Array(a) => a.iter().any(|x| x == t),
        _ => false,
    }
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    op
}

fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("parameter {name} in {op}"))
}

/// The JSON schema of a response or request body, resolved.
fn json_schema<'a>(doc: &'a Value, holder: &'a Value) -> &'a Value {
    let schema = &holder["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "a JSON schema in {holder}");
    resolve(doc, schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_typed() {
    let nats = Nats::start();
    let server = Server::start(&nats);
    let api = server.api();
    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await
        .expect(200);
    let version = doc["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3."), "OpenAPI 3.x, not {version:?}");

    // The document lists exactly the routes, and the router serves each.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item[**m].is_object())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, listed);
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{id}", "C0")
            .replace("{ws}", "W0")
            .replace("{user}", "U0")
            .replace("{emoji}", "x")
            .replace("{file}", "events.jsonl")
            .replace("{message_id}", "M0");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = api.call(method.clone(), &concrete, None, None).await;
        let unrouted = r.status == 405 || r.body["error"]["message"] == "route not found";
        assert!(
            !unrouted,
            "{method} {path} is served: {} {}",
            r.status, r.body
        );
    }

    // Every operation: a success response, the error response, ids in
    // paths as strings.
    for (method, path) in ROUTES {
        let op = operation(&doc, method, path);
        let responses = op["responses"].as_object().expect("responses");
        let success: Vec<&Value> = responses
            .iter()
            .filter(|(s, _)| s.starts_with('2') || *s == "101")
            .map(|(_, r)| r)
            .collect();
        assert!(!success.is_empty(), "{method} {path} documents its success");
        // Every JSON answer names its schema (not the WebSocket's 101, the
        // SSE stream or a file's bytes).
        if !matches!(
            *path,
            "/v1/realtime"
                | "/v1/sse"
                | "/v1/files/{id}"
                | "/v1/admin/exports/{id}/{file}"
                | "/metrics"
        ) {
            for r in success {
                json_schema(&doc, r);
            }
        }
        let error = json_schema(&doc, &op["responses"]["default"]);
        let detail = resolve(&doc, &error["properties"]["error"]);
        let code = resolve(&doc, &detail["properties"]["code"]);
        let codes = code["enum"].as_array().expect("error codes");
        for c in [
            "unauthorized",
            "not_a_member",
            "not_found",
            "invalid_request",
            "unavailable",
        ] {
            assert!(codes.iter().any(|x| x == c), "{c} in {codes:?}");
        }
        assert!(has_type(&detail["properties"]["message"], "string"));
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] == "path" {
                assert!(has_type(&p["schema"], "string"), "{path}: {p}");
                assert_eq!(p["required"], true, "{path}: {p}");
            }
        }
    }

    // Query parameters typed as they are parsed.
    for (path, max_limit) in [
        ("/v1/channels/{id}/messages", 200),
        ("/v1/channels/{id}/events", 1000),
        ("/v1/messages/{id}/replies", 200),
    ] {
        let op = operation(&doc, "get", path);
        let names: &[&str] = if path.ends_with("messages") {
            &["before", "after_seq"]
        } else {
            &["after_seq"]
        };
        for name in names {
            let p = param(op, name);
            assert_eq!(p["in"], "query");
            assert!(has_type(&p["schema"], "integer"), "{path} {name}: {p}");
            assert_eq!(p["schema"]["minimum"], 0, "{path} {name}");
        }
        let limit = param(op, "limit");
        assert!(has_type(&limit["schema"], "integer"), "{path} limit");
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], max_limit);
        assert_ne!(limit["required"], true);
    }
    let user_ids = param(operation(&doc, "get", "/v1/presence"), "user_ids");
    assert!(has_type(&user_ids["schema"], "string"), "{user_ids}");

    // Request body and response of a post.
    let post = operation(&doc, "post", "/v1/messages");
    let body = json_schema(&doc, &post["requestBody"]);
    let required: Vec<&str> = body["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        required.contains(&"channel_id") && required.contains(&"text"),
        "{required:?}"
    );
    assert!(!required.contains(&"client_msg_id"), "{required:?}");
    for field in ["channel_id", "text", "client_msg_id", "thread_root_id"] {
        assert!(
            has_type(&body["properties"][field], "string"),
            "{field}: {}",
            body["properties"][field]
        );
    }
    let message = json_schema(&doc, &post["responses"]["201"]);
    assert!(has_type(&message["properties"]["seq"], "integer"));
    assert!(has_type(&message["properties"]["channel_id"], "string"));
    let page = json_schema(
        &doc,
        &operation(&doc, "get", "/v1/channels/{id}/messages")["responses"]["200"],
    );
    assert!(has_type(&page["properties"]["has_more"], "boolean"));
    assert_eq!(
        resolve(&doc, &page["properties"]["messages"]["items"]),
        message,
        "a history page holds messages"
    );
    // The conversation fields of a message, and the error codes they bring.
    for field in ["mentions", "reply_user_ids", "latest_reply_ts", "pinned"] {
        assert!(message["properties"][field].is_object(), "{field}");
    }
    let mentions = resolve(&doc, &message["properties"]["mentions"]);
    assert!(has_type(&mentions["properties"]["here"], "boolean"));
    let edit = operation(&doc, "patch", "/v1/messages/{id}");
    let edit_body = json_schema(&doc, &edit["requestBody"]);
    assert!(has_type(&edit_body["properties"]["text"], "string"));
    assert_eq!(json_schema(&doc, &edit["responses"]["200"]), message);
    let error = json_schema(&doc, &edit["responses"]["default"]);
    let detail = resolve(&doc, &error["properties"]["error"]);
    let codes = &resolve(&doc, &detail["properties"]["code"])["enum"];
    for c in ["channel_archived", "too_many_reactions"] {
        assert!(
            codes.as_array().is_some_and(|a| a.iter().any(|x| x == c)),
            "{c} in {codes}"
        );
    }
}
