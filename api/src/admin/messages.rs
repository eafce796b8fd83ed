//! User messages about asynchronous failures (`/messages`, microversion 3.3;
//! paging and sorting from 3.5).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::UserMessage;
use scoria_core::Error;
use scoria_db::MessageQuery;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::extract::Params;
use crate::http::fault::{ApiError, ApiResult};
use crate::http::links;
use crate::http::paging::View;
use crate::http::{list_filters, paging};
use crate::ApiState;

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/messages", get(list))
        .route("/messages/{id}", get(show).delete(remove))
}

/// The first microversion with messages.
const MESSAGES_VERSION: u32 = 3;
/// The first microversion that pages and sorts messages.
const PAGING_VERSION: u32 = 5;

#[derive(Deserialize)]
struct MessagePath {
    id: String,
}

fn view(ctx: &Ctx, m: &UserMessage) -> Value {
    json!({
        "id": m.id,
        "event_id": m.event_id,
        "user_message": m.user_message,
        "message_level": m.message_level,
        "resource_type": m.resource_type,
        "resource_uuid": m.resource_uuid,
        "created_at": m.created_at,
        "guaranteed_until": m.expires_at,
        "request_id": m.request_id,
        "links": links::value(ctx, "messages", &m.id),
    })
}

/// The filters of a listing: the caller's project unless an administrator
/// asks for `all_tenants`, plus the message fields given.
fn query(ctx: &Ctx, params: &Params) -> ApiResult<MessageQuery> {
    list_filters::check(ctx, "message", params)?;
    let all = list_filters::all_tenants(ctx, params);
    let field = |key: &str| params.get(key).map(str::to_string);
    let page = match ctx.version.at_least(PAGING_VERSION) {
        true => paging::page(params, MessageQuery::SORT_KEYS)?,
        false => paging::page(&Params(Vec::new()), MessageQuery::SORT_KEYS)?,
    };
    Ok(MessageQuery {
        project_id: (!all).then(|| ctx.rc.project_id.clone()),
        resource_uuid: field("resource_uuid"),
        resource_type: field("resource_type"),
        event_id: field("event_id"),
        request_id: field("request_id"),
        message_level: field("message_level"),
        like: list_filters::likes(ctx, params, MessageQuery::LIKE_KEYS)?,
        page,
    })
}

async fn list(State(s): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Response> {
    ctx.require_version(MESSAGES_VERSION)?;
    let q = query(&ctx, &params)?;
    let messages = s.db.list_messages(&q).await?;
    let items: Vec<Value> = messages.iter().map(|m| view(&ctx, m)).collect();
    if !ctx.version.at_least(PAGING_VERSION) {
        return Ok(Json(json!({ "messages": items })).into_response());
    }
    let last = messages.last().map(|m| m.id.as_str());
    let body = paging::listing(
        &ctx,
        "messages",
        View::default(),
        &params,
        &q.page,
        items,
        last,
    );
    Ok(body.into_response())
}

/// A message the caller may see; others' are reported missing.
async fn visible(s: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<UserMessage> {
    ctx.require_version(MESSAGES_VERSION)?;
    let m = s.db.get_message(id).await?;
    ctx.check_project(&m.project_id, "Message", id)?;
    Ok(m)
}

async fn show(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<MessagePath>,
) -> ApiResult<Json<Value>> {
    let m = visible(&s, &ctx, &p.id).await?;
    Ok(Json(json!({ "message": view(&ctx, &m) })))
}

async fn remove(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<MessagePath>,
) -> ApiResult<StatusCode> {
    visible(&s, &ctx, &p.id).await?;
    if !s.db.delete_message(&p.id).await? {
        return Err(ApiError(Error::not_found("Message", &p.id)));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn ctx(is_admin: bool, minor: u32) -> Ctx {
        Ctx::for_test(is_admin, minor)
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::for_test(pairs)
    }

    #[test]
    fn listing_is_scoped_to_the_project() {
        let all = params(&[("all_tenants", "1"), ("event_id", "VOLUME_VOLUME_001_003")]);
        let q = query(&ctx(false, 3), &all).unwrap();
        assert_eq!(q.project_id.as_deref(), Some("p1"));
        assert_eq!(q.event_id.as_deref(), Some("VOLUME_VOLUME_001_003"));
        assert_eq!(query(&ctx(true, 3), &all).unwrap().project_id, None);
        assert_eq!(
            query(&ctx(true, 3), &params(&[]))
                .unwrap()
                .project_id
                .as_deref(),
            Some("p1")
        );
    }

    #[test]
    fn paging_starts_at_3_5() {
        let limited = params(&[("limit", "2"), ("sort", "bogus")]);
        assert!(query(&ctx(false, 4), &limited).is_ok());
        assert!(query(&ctx(false, 5), &limited).is_err());
        let q = query(&ctx(false, 5), &params(&[("limit", "2")])).unwrap();
        assert_eq!(q.page.limit, Some(2));
    }

    #[test]
    fn view_shows_expiry_and_links() {
        let m = UserMessage {
            id: "m1".into(),
            project_id: "p1".into(),
            request_id: "req-9".into(),
            resource_type: "VOLUME".into(),
            resource_uuid: Some("v1".into()),
            event_id: "VOLUME_VOLUME_001_003".into(),
            message_level: "ERROR".into(),
            user_message: "schedule allocate volume:Could not find any available weighted backend."
                .into(),
            created_at: "2026-01-01T00:00:00.000000".into(),
            expires_at: "2026-01-31T00:00:00.000000".into(),
        };
        let v = view(&ctx(false, 3), &m);
        assert_eq!(v["guaranteed_until"], "2026-01-31T00:00:00.000000");
        assert_eq!(v["links"][0]["href"], "http://h/v3/p1/messages/m1");
        assert_eq!(v["links"][1]["rel"], "bookmark");
    }
}
