//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;
use super::sse;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "twinrt node API",
        description = "Twins by path or id, subtrees, history, journal, alarms and live changes. \
                       See docs/api.md for errors, scopes and roles."
    ),
    paths(
        api::get_twin,
        api::get_tree,
        api::find,
        api::get_history,
        api::get_events,
        api::list_alarms,
        api::acknowledge,
        api::shelve,
        api::unshelve,
        api::out_of_service,
        api::setpoint,
        api::whoami,
        sse::stream,
        api::audit_log,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "twins", description = "Twins, subtrees and search"),
        (name = "history", description = "Property history and the event journal"),
        (name = "alarms", description = "Alarm lists and operator commands"),
        (name = "live", description = "Server-Sent Events"),
        (name = "auth", description = "Tokens"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
