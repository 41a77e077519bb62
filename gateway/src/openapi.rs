//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Its paths,
//! parameters, request bodies and responses come from the handlers'
//! `#[utoipa::path]` and the types they name (`ToSchema`, `IntoParams`),
//! collected by the route table that also builds the router
//! ([`crate::routes`]). This module adds what every operation shares: the
//! two bearer schemes and the error response.

use crate::error::ErrorBody;
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        version = "v1",
        description = "Event-sourced, multi-tenant team messaging. \
            The contract is API.md; this reference is generated from the code."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerSchemes)
)]
struct Base;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "user",
                "a user's or bot's token: `Authorization: Bearer <token>`",
            ),
            (
                "operator",
                "the server operator's token (SWITCHBOARD_ADMIN_TOKEN)",
            ),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        // A browser's session (POST /v1/auth/login): every route taking
        // "user" also takes it; writes need the X-CSRF-Token header.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    crate::extract::SESSION_COOKIE,
                    "the browser session cookie; writes also need X-CSRF-Token",
                ),
            )),
        );
    }
}

/// The document before the routes are added.
pub(crate) fn base() -> OpenApi {
    Base::openapi()
}

/// The whole document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = crate::routes::table().into_openapi();
        for item in doc.paths.paths.values_mut() {
            operations(item).for_each(add_error_response);
        }
        doc
    })
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Every operation may fail with the API's error body (`default`: any
/// status its own responses do not list).
fn add_error_response(op: &mut Operation) {
    let error = ResponseBuilder::new()
        .description("an error: the status, and a code from API.md")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build();
    op.responses
        .responses
        .entry("default".to_string())
        .or_insert(error.into());
}
