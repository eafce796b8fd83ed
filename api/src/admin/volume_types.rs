//! Volume types and their extra specs: `/types`, `/types/default`,
//! `/types/{id}` and `/types/{id}/extra_specs[/{key}]`.
//!
//! Everyone may read public types; only administrators see private ones,
//! every extra spec, and may change anything.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::{Metadata, VolumeType, DEFAULT_TYPE_NAME};
use scoria_core::{time, Error};
use scoria_db::{MetaKind, VolumeTypeChanges};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::context::Ctx;
use crate::http::extract::{JsonBody, Params};
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate::{self, MAX_TEXT};
use crate::ApiState;

/// Extra specs a caller who is not an administrator may see.
const USER_VISIBLE_SPECS: &[&str] = &[
    "RESKEY:availability_zones",
    "multiattach",
    "replication_enabled",
];

/// The visibility attribute under its extension name, as clients send and read it.
const ACCESS_PUBLIC: &str = "os-volume-type-access:is_public";

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/types", get(list).post(create))
        .route("/types/default", get(show_default))
        .route("/types/{id}", get(show).put(update).delete(remove))
        .route("/types/{id}/extra_specs", get(list_specs).post(add_specs))
        .route(
            "/types/{id}/extra_specs/{key}",
            get(show_spec).put(update_spec).delete(remove_spec),
        )
}

#[derive(Deserialize)]
struct TypePath {
    id: String,
}

#[derive(Deserialize)]
struct SpecPath {
    id: String,
    key: String,
}

fn type_not_found(id: &str) -> ApiError {
    ApiError(Error::NotFound(format!(
        "Volume type {id} could not be found."
    )))
}

/// The extra specs of a type the caller may see.
pub(crate) fn visible_specs(is_admin: bool, specs: &Metadata) -> Metadata {
    specs
        .iter()
        .filter(|(k, _)| is_admin || USER_VISIBLE_SPECS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn view(ctx: &Ctx, t: &VolumeType) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "is_public": t.is_public,
        ACCESS_PUBLIC: t.is_public,
        "extra_specs": visible_specs(ctx.rc.is_admin, &t.extra_specs),
        "qos_specs_id": null,
    })
}

/// A type by id, hidden (404) from non-administrators when it is private.
async fn visible_type(s: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<VolumeType> {
    let t = s.db.get_volume_type(id).await?;
    if t.is_public || ctx.rc.is_admin {
        Ok(t)
    } else {
        Err(type_not_found(id))
    }
}

/// Which types a listing shows: `Some(public)` for one kind, `None` for all.
/// Administrators choose with `is_public` (absent: public; `None`: all);
/// everyone else sees public types.
fn listed_visibility(is_admin: bool, is_public: Option<&str>) -> ApiResult<Option<bool>> {
    match is_public {
        _ if !is_admin => Ok(Some(true)),
        None => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
        Some(v) => validate::parse_bool(v).map(Some).ok_or_else(|| {
            bad_request(format!(
                "Invalid is_public filter [{v}]; use true, false or None."
            ))
        }),
    }
}

/// The `extra_specs` filter of a listing (from 3.52): pairs every listed
/// type must carry. `None` when absent or older.
fn spec_filter(ctx: &Ctx, params: &Params) -> ApiResult<Option<Vec<(String, String)>>> {
    match params.get("extra_specs") {
        Some(text) if ctx.version.at_least(52) => validate::metadata_filter(text).map(Some),
        _ => Ok(None),
    }
}

/// Whether `t` carries every wanted spec. A caller who is not an
/// administrator matches nothing by specs hidden from them.
fn has_specs(is_admin: bool, t: &VolumeType, wanted: &[(String, String)]) -> bool {
    let visible = visible_specs(is_admin, &t.extra_specs);
    wanted
        .iter()
        .all(|(k, v)| visible.get(k).is_some_and(|have| have == v))
}

async fn list(State(s): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    let wanted = listed_visibility(ctx.rc.is_admin, params.get("is_public"))?;
    let specs = spec_filter(&ctx, &params)?.unwrap_or_default();
    let types = s.db.list_volume_types(wanted == Some(true)).await?;
    let views: Vec<Value> = types
        .iter()
        .filter(|t| wanted.is_none_or(|public| t.is_public == public))
        .filter(|t| has_specs(ctx.rc.is_admin, t, &specs))
        .map(|t| view(&ctx, t))
        .collect();
    Ok(Json(json!({ "volume_types": views })))
}

async fn show_default(State(s): State<ApiState>, ctx: Ctx) -> ApiResult<Json<Value>> {
    let t =
        s.db.find_volume_type(DEFAULT_TYPE_NAME)
            .await
            .map_err(|_| {
                ApiError(Error::NotFound(format!(
                    "The default volume type {DEFAULT_TYPE_NAME} could not be found."
                )))
            })?;
    Ok(Json(json!({ "volume_type": view(&ctx, &t) })))
}

async fn show(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<TypePath>,
) -> ApiResult<Json<Value>> {
    let t = visible_type(&s, &ctx, &p.id).await?;
    Ok(Json(json!({ "volume_type": view(&ctx, &t) })))
}

/// The `name` of a type body, trimmed; present names must not be blank.
fn type_name(m: &Map<String, Value>) -> ApiResult<Option<String>> {
    match validate::opt_string(m, "name", MAX_TEXT)? {
        Some(n) if n.trim().is_empty() => Err(bad_request(
            "Invalid input for field/attribute name. A volume type name must not be blank.",
        )),
        other => Ok(other.map(|n| n.trim().to_string())),
    }
}

/// Visibility from `os-volume-type-access:is_public` or, failing that, `is_public`.
fn type_visibility(m: &Map<String, Value>) -> ApiResult<Option<bool>> {
    [ACCESS_PUBLIC, "is_public"]
        .into_iter()
        .find_map(|key| {
            m.get(key)
                .filter(|v| !v.is_null())
                .map(|v| validate::boolean(key, v))
        })
        .transpose()
}

/// Extra specs: an object of string values whose keys are 1–255 letters,
/// digits or `-_:./`.
fn extra_specs(v: &Value) -> ApiResult<Metadata> {
    let Value::Object(m) = v else {
        return Err(bad_request(format!(
            "Invalid input for field/attribute extra_specs. Value: {v}. It must be an object of strings."
        )));
    };
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars().count() <= MAX_TEXT
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:./".contains(c))
    };
    let mut out = Metadata::new();
    for (k, val) in m {
        if !valid_key(k) {
            return Err(bad_request(format!(
                "Invalid input for field/attribute extra_specs. The key '{k}' must be 1 to {MAX_TEXT} \
                 letters, digits or any of '-_:./'."
            )));
        }
        match val {
            Value::String(s) if s.chars().count() <= MAX_TEXT => {
                out.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(bad_request(format!(
                    "Invalid input for field/attribute extra_specs. The value of '{k}' must be a string \
                     of at most {MAX_TEXT} characters, not {val}."
                )))
            }
        }
    }
    Ok(out)
}

async fn create(
    State(s): State<ApiState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:type_create")?;
    validate::only_keys(&body, &["volume_type"])?;
    let m = validate::object(&body, "volume_type")?;
    validate::only_keys(
        m,
        &[
            "name",
            "description",
            "extra_specs",
            ACCESS_PUBLIC,
            "is_public",
        ],
    )?;
    let name = type_name(m)?.ok_or_else(|| {
        bad_request(format!(
            "Invalid input for field/attribute name. A volume type needs a name of 1 to {MAX_TEXT} characters."
        ))
    })?;
    let t = VolumeType {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        description: validate::opt_string(m, "description", MAX_TEXT)?,
        is_public: type_visibility(m)?.unwrap_or(true),
        extra_specs: m
            .get("extra_specs")
            .map(extra_specs)
            .transpose()?
            .unwrap_or_default(),
        created_at: time::now(),
        updated_at: None,
    };
    s.db.insert_volume_type(&t).await?;
    Ok(Json(json!({ "volume_type": view(&ctx, &t) })))
}

async fn update(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<TypePath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:type_update")?;
    validate::only_keys(&body, &["volume_type"])?;
    let m = validate::object(&body, "volume_type")?;
    validate::only_keys(m, &["name", "description", ACCESS_PUBLIC, "is_public"])?;
    let changes = VolumeTypeChanges {
        name: type_name(m)?,
        description: validate::opt_string(m, "description", MAX_TEXT)?.map(Some),
        is_public: type_visibility(m)?,
    };
    if changes.name.is_none() && changes.description.is_none() && changes.is_public.is_none() {
        return Err(bad_request(
            "Specify the volume type's name, description, is_public or a combination of them.",
        ));
    }
    s.db.update_volume_type(&p.id, &changes).await?;
    let t = s.db.get_volume_type(&p.id).await?;
    Ok(Json(json!({ "volume_type": view(&ctx, &t) })))
}

async fn remove(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<TypePath>,
) -> ApiResult<StatusCode> {
    ctx.require_admin("volume_extension:type_delete")?;
    let t = s.db.get_volume_type(&p.id).await?;
    if t.name == DEFAULT_TYPE_NAME {
        return Err(bad_request(format!(
            "The default volume type {DEFAULT_TYPE_NAME} can not be deleted."
        )));
    }
    if !s.db.delete_volume_type(&p.id).await? {
        return Err(bad_request("Target volume type is still in use."));
    }
    Ok(StatusCode::ACCEPTED)
}

/// Fails unless the type exists and no volume uses it: the extra specs of a
/// type in use stay as the volumes were scheduled with.
async fn specs_changeable(s: &ApiState, id: &str) -> ApiResult<()> {
    s.db.get_volume_type(id).await?;
    if s.db.volume_type_in_use(id).await? {
        Err(bad_request("Volume Type is currently in use."))
    } else {
        Ok(())
    }
}

async fn list_specs(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<TypePath>,
) -> ApiResult<Json<Value>> {
    let t = visible_type(&s, &ctx, &p.id).await?;
    Ok(Json(
        json!({ "extra_specs": visible_specs(ctx.rc.is_admin, &t.extra_specs) }),
    ))
}

async fn add_specs(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<TypePath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:types_extra_specs:create")?;
    validate::only_keys(&body, &["extra_specs"])?;
    let sent = body.get("extra_specs").ok_or_else(|| {
        bad_request("Malformed request body: the body must contain 'extra_specs'.")
    })?;
    let specs = extra_specs(sent)?;
    specs_changeable(&s, &p.id).await?;
    s.db.set_metadata(MetaKind::ExtraSpecs, &p.id, &specs, false)
        .await?;
    Ok(Json(json!({ "extra_specs": specs })))
}

fn spec_not_found(id: &str, key: &str) -> ApiError {
    ApiError(Error::NotFound(format!(
        "Volume Type {id} has no extra specs with key {key}."
    )))
}

async fn show_spec(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<SpecPath>,
) -> ApiResult<Json<Value>> {
    let t = visible_type(&s, &ctx, &p.id).await?;
    let specs = visible_specs(ctx.rc.is_admin, &t.extra_specs);
    let value = specs
        .get(&p.key)
        .ok_or_else(|| spec_not_found(&p.id, &p.key))?;
    Ok(Json(json!({ p.key.as_str(): value })))
}

/// The body of `PUT …/extra_specs/{key}`: exactly `{key: value}`.
fn single_spec(key: &str, body: Map<String, Value>) -> ApiResult<Metadata> {
    if !body.contains_key(key) {
        return Err(bad_request(format!(
            "Request body and URI mismatch: the body must be {{\"{key}\": value}}."
        )));
    }
    if body.len() > 1 {
        return Err(bad_request(format!(
            "Request body contains too many items: only '{key}' may be set."
        )));
    }
    extra_specs(&Value::Object(body))
}

async fn update_spec(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<SpecPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:types_extra_specs:update")?;
    let spec = single_spec(&p.key, body)?;
    specs_changeable(&s, &p.id).await?;
    s.db.set_metadata(MetaKind::ExtraSpecs, &p.id, &spec, false)
        .await?;
    Ok(Json(json!(spec)))
}

async fn remove_spec(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<SpecPath>,
) -> ApiResult<StatusCode> {
    ctx.require_admin("volume_extension:types_extra_specs:delete")?;
    specs_changeable(&s, &p.id).await?;
    if !s
        .db
        .delete_metadata_key(MetaKind::ExtraSpecs, &p.id, &p.key)
        .await?
    {
        return Err(spec_not_found(&p.id, &p.key));
    }
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn listing_visibility() {
        assert_eq!(listed_visibility(true, None).unwrap(), Some(true));
        assert_eq!(listed_visibility(true, Some("None")).unwrap(), None);
        assert_eq!(listed_visibility(true, Some("false")).unwrap(), Some(false));
        assert!(listed_visibility(true, Some("maybe")).is_err());
        assert_eq!(listed_visibility(false, Some("None")).unwrap(), Some(true));
        assert_eq!(listed_visibility(false, Some("maybe")).unwrap(), Some(true));
    }

    #[test]
    fn non_admins_see_only_user_specs() {
        let specs: Metadata = [
            ("multiattach", "<is> True"),
            ("volume_backend_name", "file"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(visible_specs(true, &specs), specs);
        assert_eq!(
            visible_specs(false, &specs).keys().collect::<Vec<_>>(),
            ["multiattach"]
        );
    }

    #[test]
    fn spec_filter_matches_visible_specs_only() {
        let t = VolumeType {
            id: "t1".into(),
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: [
                ("multiattach", "<is> True"),
                ("volume_backend_name", "file"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            created_at: "2026-01-01T00:00:00.000000".into(),
            updated_at: None,
        };
        let want = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(has_specs(true, &t, &want("volume_backend_name", "file")));
        assert!(!has_specs(true, &t, &want("volume_backend_name", "lvm")));
        assert!(!has_specs(false, &t, &want("volume_backend_name", "file")));
        assert!(has_specs(false, &t, &want("multiattach", "<is> True")));
        assert!(has_specs(false, &t, &[]));
    }

    #[test]
    fn extra_spec_values_must_be_strings() {
        assert_eq!(
            extra_specs(&json!({"a:b": "1"}))
                .unwrap()
                .get("a:b")
                .unwrap(),
            "1"
        );
        let err = extra_specs(&json!({"size": 5})).unwrap_err();
        assert!(err.0.to_string().contains("'size'"), "{}", err.0);
        assert!(extra_specs(&json!({"has space": "x"})).is_err());
        assert!(extra_specs(&json!(["x"])).is_err());
    }

    #[test]
    fn single_spec_body_must_match_the_url() {
        assert!(single_spec("k", body(json!({"k": "v"}))).is_ok());
        assert!(single_spec("k", body(json!({"other": "v"}))).is_err());
        assert!(single_spec("k", body(json!({"k": "v", "j": "w"}))).is_err());
    }

    #[test]
    fn names_and_visibility_from_bodies() {
        assert_eq!(
            type_name(&body(json!({"name": " gold "})))
                .unwrap()
                .as_deref(),
            Some("gold")
        );
        assert!(type_name(&body(json!({"name": "  "}))).is_err());
        assert_eq!(type_name(&body(json!({}))).unwrap(), None);
        let both = body(json!({ACCESS_PUBLIC: false, "is_public": true}));
        assert_eq!(type_visibility(&both).unwrap(), Some(false));
        assert_eq!(
            type_visibility(&body(json!({"is_public": "yes"}))).unwrap(),
            Some(true)
        );
        assert!(type_visibility(&body(json!({"is_public": "perhaps"}))).is_err());
    }
}
