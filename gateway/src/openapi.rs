//! The OpenAPI 3.1 document, generated from the route table that also
//! builds the router.

use crate::routes::Route;
use serde_json::{json, Map, Value};

/// One documented operation of a route.
pub struct Op {
    pub method: &'static str,
    pub summary: &'static str,
    pub auth: &'static str,
    pub body: Option<&'static str>,
    pub params: &'static [&'static str],
    pub created: bool,
}

impl Op {
    pub const fn new(method: &'static str, summary: &'static str, auth: &'static str) -> Op {
        Op {
            method,
            summary,
            auth,
            body: None,
            params: &[],
            created: false,
        }
    }
    pub const fn body(mut self, example: &'static str) -> Op {
        self.body = Some(example);
        self
    }
    pub const fn params(mut self, names: &'static [&'static str]) -> Op {
        self.params = names;
        self
    }
    pub const fn created(mut self) -> Op {
        self.created = true;
        self
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}}}}
    })
}

pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let mut item = Map::new();
        let path_params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        for op in r.ops {
            let mut parameters = path_params.clone();
            parameters.extend(op.params.iter().map(|name| {
                json!({"name": name, "in": "query", "required": false, "schema": {"type": "integer"}})
            }));
            let ok = if op.created { "201" } else { "200" };
            let mut o = json!({
                "summary": op.summary,
                "x-auth": op.auth,
                "parameters": parameters,
                "responses": {
                    ok: {"description": "success"},
                    "default": {"description": "error", "content": {"application/json": {"schema": error_schema()}}}
                }
            });
            if op.auth != "none" {
                o["security"] = json!([{"bearer": []}]);
            }
            if let Some(example) = op.body {
                let example: Value = serde_json::from_str(example).unwrap_or(Value::Null);
                o["requestBody"] = json!({"required": true, "content": {"application/json": {"example": example}}});
            }
            item.insert(op.method.to_string(), o);
        }
        paths.insert(r.path.to_string(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Switchboard API", "version": "v1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}
