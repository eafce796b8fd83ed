//! List filters: the keys each resource accepts from callers who are not
//! administrators (Cinder's `resource_filters.json`), enforced from 3.31 and
//! listed by `GET /resource_filters` (3.33), and substring filters
//! `key~=value` (3.34).

use axum::routing::get;
use axum::{Json, Router};
use scoria_db::{Like, LikeKey};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::extract::Params;
use crate::http::fault::{bad_request, ApiResult};
use crate::ApiState;

/// The filter keys one resource accepts.
#[derive(Debug, Serialize)]
pub struct ResourceFilters {
    pub resource: &'static str,
    pub filters: &'static [&'static str],
}

/// The one table of accepted filter keys, per resource Scoria serves.
pub const RESOURCE_FILTERS: &[ResourceFilters] = &[
    ResourceFilters {
        resource: "volume",
        filters: &[
            "name",
            "status",
            "metadata",
            "bootable",
            "migration_status",
            "availability_zone",
            "group_id",
            "size",
            "created_at",
            "updated_at",
        ],
    },
    ResourceFilters {
        resource: "snapshot",
        filters: &[
            "name",
            "status",
            "volume_id",
            "metadata",
            "availability_zone",
        ],
    },
    ResourceFilters {
        resource: "message",
        filters: &[
            "resource_uuid",
            "resource_type",
            "event_id",
            "request_id",
            "message_level",
        ],
    },
    ResourceFilters {
        resource: "attachment",
        filters: &["volume_id", "status", "instance_id", "attach_status"],
    },
    ResourceFilters {
        resource: "pool",
        filters: &["name", "volume_type"],
    },
];

/// The first microversion that rejects unknown filters.
const STRICT_VERSION: u32 = 31;
/// The first microversion with `GET /resource_filters`.
const LISTING_VERSION: u32 = 33;
/// The first microversion with substring filters.
const LIKE_VERSION: u32 = 34;

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/resource_filters", get(list))
}

/// The filter keys of `resource` (none for a resource not in the table).
pub fn filters_of(resource: &str) -> &'static [&'static str] {
    RESOURCE_FILTERS
        .iter()
        .find(|r| r.resource == resource)
        .map_or(&[], |r| r.filters)
}

/// Whether a query parameter pages, sorts or scopes a listing instead of filtering it.
fn steers(ctx: &Ctx, key: &str) -> bool {
    match key {
        "limit" | "marker" | "offset" | "sort" | "sort_key" | "sort_dir" | "all_tenants" => true,
        "with_count" => ctx.version.at_least(45),
        _ => false,
    }
}

/// From 3.31 a caller who is not an administrator may filter `resource` only
/// by its keys of [`RESOURCE_FILTERS`] (and from 3.34 by their `key~` forms);
/// any other filter is a 400 that names it. Earlier, unknown filters are ignored.
pub fn check(ctx: &Ctx, resource: &str, params: &Params) -> ApiResult<()> {
    if ctx.rc.is_admin || !ctx.version.at_least(STRICT_VERSION) {
        return Ok(());
    }
    let allowed = filters_of(resource);
    let like_allowed = ctx.version.at_least(LIKE_VERSION);
    let accepted = |key: &str| {
        allowed.contains(&key)
            || (like_allowed && key.strip_suffix('~').is_some_and(|k| allowed.contains(&k)))
    };
    let mut invalid: Vec<&str> = Vec::new();
    for (key, _) in &params.0 {
        if !steers(ctx, key) && !accepted(key) && !invalid.contains(&key.as_str()) {
            invalid.push(key);
        }
    }
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(bad_request(format!(
            "Invalid filters {} are found in query options.",
            invalid.join(",")
        )))
    }
}

/// Whether an administrator asks for every project's items (`all_tenants`);
/// anyone else always sees only their own project's.
pub(crate) fn all_tenants(ctx: &Ctx, params: &Params) -> bool {
    ctx.rc.is_admin
        && params
            .get("all_tenants")
            .and_then(crate::http::validate::parse_bool)
            .unwrap_or(false)
}

/// The substring filters (`key~=value`, from 3.34) of a listing whose text
/// columns are `keys`; a `~` on any other key is a 400. Before 3.34 there are none.
pub fn likes(ctx: &Ctx, params: &Params, keys: &[LikeKey]) -> ApiResult<Vec<Like>> {
    if !ctx.version.at_least(LIKE_VERSION) {
        return Ok(Vec::new());
    }
    let mut out: Vec<Like> = Vec::new();
    for (param, value) in &params.0 {
        let Some(name) = param.strip_suffix('~') else {
            continue;
        };
        let key = keys.iter().find(|k| k.name == name).ok_or_else(|| {
            let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
            bad_request(format!(
                "Invalid input received: '{param}' cannot match part of a value; substring filters exist for {}.",
                names.join(", ")
            ))
        })?;
        // The last value given wins, as for every other parameter.
        out.retain(|l| l.key != *key);
        out.push(Like {
            key: *key,
            value: value.clone(),
        });
    }
    Ok(out)
}

/// `GET /resource_filters[?resource=]` (3.33).
async fn list(ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    ctx.require_version(LISTING_VERSION)?;
    let wanted = params.get("resource");
    let listed: Vec<&ResourceFilters> = RESOURCE_FILTERS
        .iter()
        .filter(|r| wanted.is_none_or(|w| r.resource == w))
        .collect();
    Ok(Json(json!({ "resource_filters": listed })))
}

#[cfg(test)]
mod tests {
    use scoria_db::VolumeQuery;

    use super::*;

    fn ctx(is_admin: bool, minor: u32) -> Ctx {
        Ctx::for_test(is_admin, minor)
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::for_test(pairs)
    }

    fn message(e: crate::http::fault::ApiError) -> String {
        match e.0 {
            scoria_core::Error::BadRequest(m) => m,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn unknown_filters_are_refused_from_3_31_for_users_only() {
        let p = params(&[("name", "a"), ("bogus", "1"), ("host", "h"), ("bogus", "2")]);
        assert!(check(&ctx(false, 30), "volume", &p).is_ok());
        assert!(check(&ctx(true, 31), "volume", &p).is_ok());
        let err = check(&ctx(false, 31), "volume", &p).unwrap_err();
        assert_eq!(
            message(err),
            "Invalid filters bogus,host are found in query options."
        );
    }

    #[test]
    fn paging_and_scope_are_not_filters() {
        let p = params(&[
            ("limit", "1"),
            ("marker", "m"),
            ("offset", "0"),
            ("sort", "name"),
            ("sort_key", "name"),
            ("sort_dir", "asc"),
            ("all_tenants", "1"),
            ("status", "available"),
        ]);
        assert!(check(&ctx(false, 31), "snapshot", &p).is_ok());
        let counted = params(&[("with_count", "true")]);
        assert!(check(&ctx(false, 44), "volume", &counted).is_err());
        assert!(check(&ctx(false, 45), "volume", &counted).is_ok());
    }

    #[test]
    fn like_forms_follow_the_table_from_3_34() {
        let p = params(&[("name~", "a")]);
        assert!(check(&ctx(false, 33), "volume", &p).is_err());
        assert!(check(&ctx(false, 34), "volume", &p).is_ok());
        assert!(check(&ctx(false, 34), "volume", &params(&[("host~", "a")])).is_err());
        assert!(check(&ctx(false, 34), "message", &params(&[("event_id~", "1")])).is_ok());
    }

    #[test]
    fn likes_map_to_columns() {
        let keys = VolumeQuery::LIKE_KEYS;
        let p = params(&[("name~", "x"), ("status", "available"), ("name~", "y")]);
        assert!(likes(&ctx(false, 33), &p, keys).unwrap().is_empty());
        let found = likes(&ctx(false, 34), &p, keys).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].key.column, found[0].value.as_str()),
            ("name", "y")
        );
        let err = likes(&ctx(true, 34), &params(&[("size~", "1")]), keys).unwrap_err();
        assert!(message(err).contains("'size~' cannot match part of a value"));
    }

    #[test]
    fn table_lookup() {
        assert!(filters_of("volume").contains(&"bootable"));
        assert!(filters_of("attachment").contains(&"instance_id"));
        assert!(filters_of("backup").is_empty());
    }
}
