//! `/volumes`: create, list, show, update, delete, summary.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::{admin_keys, Volume, DEFAULT_TYPE_NAME};
use scoria_core::rpc::{
    volume_topic, RequestSpec, SchedulerRequest, VolumeRequest, SCHEDULER_TOPIC,
};
use scoria_core::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use scoria_core::transitions::{snapshot, volume};
use scoria_core::{time, Error};
use scoria_db::{VolumeChanges, VolumeGuard, VolumeQuery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::context::Ctx;
use crate::http::extract::{JsonBody, Params};
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::paging::View;
use crate::http::validate::{self, MAX_TEXT};
use crate::http::{list_filters, paging};
use crate::volumes::{images, views};
use crate::ApiState;

#[derive(Deserialize)]
pub(crate) struct IdPath {
    pub id: String,
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/volumes", get(list).post(create))
        .route("/volumes/detail", get(list))
        .route("/volumes/summary", get(summary))
        .route("/volumes/{id}", get(show).put(update).delete(delete))
}

/// A volume the caller may see, or 404.
pub(crate) async fn visible_volume(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Volume> {
    let v = state.db.get_volume(id).await?;
    ctx.check_project(&v.project_id, "Volume", id)?;
    Ok(v)
}

fn first_of(m: &Map<String, Value>, keys: [&str; 2]) -> Result<Option<String>, ApiError> {
    for key in keys {
        if let Some(v) = validate::opt_string(m, key, MAX_TEXT)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Where a new volume's data comes from.
struct Source {
    size: i64,
    type_id: Option<String>,
    zone: String,
    /// Where its data is (`host@backend`).
    backend: Option<String>,
    /// Whether the volume it copies is bootable (the new volume is too).
    bootable: bool,
}

async fn source_of(
    state: &ApiState,
    ctx: &Ctx,
    snapshot_id: &Option<String>,
    source_volid: &Option<String>,
) -> ApiResult<Option<Source>> {
    if let Some(sid) = snapshot_id {
        let snap = state.db.get_snapshot(sid).await?;
        ctx.check_project(&snap.project_id, "Snapshot", sid)?;
        if snap.status != SnapshotStatus::Available {
            return Err(bad_request(format!(
                "Invalid snapshot: Originating snapshot status must be one of 'available' values; snapshot {sid} is '{}'.",
                snap.status
            )));
        }
        let vol = state.db.get_volume(&snap.volume_id).await?;
        return Ok(Some(Source {
            size: snap.size,
            backend: vol.backend().map(str::to_string),
            bootable: vol.bootable,
            type_id: vol.volume_type_id,
            zone: vol.availability_zone,
        }));
    }
    if let Some(vid) = source_volid {
        let vol = visible_volume(state, ctx, vid).await?;
        if !matches!(vol.status, VolumeStatus::Available | VolumeStatus::InUse) {
            return Err(bad_request(format!(
                "Invalid volume: Source volume {vid} must be 'available' or 'in-use' to be cloned, but it is '{}'.",
                vol.status
            )));
        }
        return Ok(Some(Source {
            size: vol.size,
            backend: vol.backend().map(str::to_string),
            bootable: vol.bootable,
            type_id: vol.volume_type_id,
            zone: vol.availability_zone,
        }));
    }
    Ok(None)
}

async fn check_zone(state: &ApiState, zone: &str) -> ApiResult<()> {
    if zone == state.cfg.default_availability_zone {
        return Ok(());
    }
    let services = state
        .db
        .list_services(None, Some(scoria_core::model::VOLUME_BINARY))
        .await?;
    if services.iter().any(|s| s.availability_zone == zone) {
        Ok(())
    } else {
        Err(bad_request(format!(
            "Invalid input received: Availability zone '{zone}' is invalid."
        )))
    }
}

/// Keys a volume create may carry from 3.53 on, when unknown keys are refused.
const CREATE_KEYS: &[&str] = &[
    "size",
    "name",
    "description",
    "display_name",
    "display_description",
    "volume_type",
    "availability_zone",
    "metadata",
    "snapshot_id",
    "source_volid",
    "imageRef",
    "image_id",
    "consistencygroup_id",
    "group_id",
    "backup_id",
    "multiattach",
];

/// Keys a volume update may carry from 3.53 on; it must carry one of them.
const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "display_name",
    "display_description",
    "metadata",
];

/// The first microversion with the `glance_metadata` list filter.
const GLANCE_METADATA_FILTER_VERSION: u32 = 4;

/// The first microversion with strict volume create and update bodies.
const STRICT_SCHEMA_VERSION: u32 = 53;

/// The `volume` object of a create or update body; from 3.53 neither it nor
/// the body may carry keys outside `allowed` (`outer` for the body).
fn volume_object<'a>(
    ctx: &Ctx,
    body: &'a Map<String, Value>,
    outer: &[&str],
    allowed: &[&str],
) -> ApiResult<&'a Map<String, Value>> {
    let m = validate::object(body, "volume")?;
    if ctx.version.at_least(STRICT_SCHEMA_VERSION) {
        validate::only_keys(body, outer)?;
        validate::only_keys(m, allowed)?;
    }
    Ok(m)
}

async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let outer = ["volume", "OS-SCH-HNT:scheduler_hints"];
    let m = volume_object(&ctx, &body, &outer, CREATE_KEYS)?;
    for unsupported in [
        "backup_id",
        "consistencygroup_id",
        "group_id",
        "source_replica",
    ] {
        if m.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(bad_request(format!(
                "Invalid input received: '{unsupported}' is not supported by this Scoria service yet; create the volume without it."
            )));
        }
    }
    if let Some(flag) = m.get("multiattach").filter(|v| !v.is_null()) {
        if validate::boolean("multiattach", flag)? {
            return Err(bad_request("Invalid input received: The multiattach flag is not accepted; use a volume type with multiattach=\"<is> True\"."));
        }
    }
    let name = first_of(m, ["name", "display_name"])?;
    let description = first_of(m, ["description", "display_description"])?;
    let snapshot_id = validate::opt_id(m, "snapshot_id")?;
    let source_volid = validate::opt_id(m, "source_volid")?;
    // `image_id` is another name of `imageRef`, and wins.
    let image_ref = match validate::opt_string(m, "image_id", MAX_TEXT)? {
        Some(r) => Some(r),
        None => validate::opt_string(m, "imageRef", MAX_TEXT)?,
    };
    let sources = [
        snapshot_id.is_some(),
        source_volid.is_some(),
        image_ref.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(bad_request(
            "Invalid input received: May specify only one of backup, imageRef, snapshot, source volume",
        ));
    }
    let metadata = match m.get("metadata").filter(|v| !v.is_null()) {
        Some(v) => validate::metadata("metadata", v)?,
        None => Default::default(),
    };
    let source = source_of(&state, &ctx, &snapshot_id, &source_volid).await?;
    let image = match &image_ref {
        Some(r) => {
            ctx.authorize(images::CREATE_FROM_IMAGE_POLICY)?;
            Some(images::resolve(&state, &ctx, r).await?)
        }
        None => None,
    };
    let size =
        match (m.get("size").filter(|v| !v.is_null()), &source) {
            (Some(v), _) => validate::size("size", v)?,
            (None, Some(src)) => src.size,
            (None, None) => return Err(bad_request(
                "Invalid input received: Volume size 'None' must be an integer and greater than 0.",
            )),
        };
    if let Some(image) = &image {
        images::check_source_image(image, size)?;
    }
    if let Some(src) = &source {
        if size < src.size {
            return Err(bad_request(format!(
                "Invalid input received: Volume size {size} GiB cannot be smaller than its source of {} GiB.",
                src.size
            )));
        }
    }
    let volume_type = match (validate::opt_string(m, "volume_type", MAX_TEXT)?, &source) {
        (Some(t), _) => state.db.find_volume_type(&t).await?,
        (
            None,
            Some(Source {
                type_id: Some(id), ..
            }),
        ) => state.db.get_volume_type(id).await?,
        _ => match image.as_ref().and_then(images::image_volume_type) {
            Some(t) => state.db.find_volume_type(&t).await?,
            None => state.db.find_volume_type(DEFAULT_TYPE_NAME).await?,
        },
    };
    let zone = match (
        validate::opt_string(m, "availability_zone", MAX_TEXT)?,
        &source,
    ) {
        (Some(z), _) => z,
        (None, Some(src)) => src.zone.clone(),
        (None, None) => state.cfg.default_availability_zone.clone(),
    };
    check_zone(&state, &zone).await?;
    let vol = Volume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.rc.project_id.clone(),
        user_id: ctx.rc.user_id.clone(),
        name,
        description,
        size,
        status: VolumeStatus::Creating,
        previous_status: None,
        attach_status: AttachStatus::Detached,
        host: None,
        availability_zone: zone,
        volume_type_id: Some(volume_type.id.clone()),
        volume_type_name: Some(volume_type.name.clone()),
        snapshot_id,
        source_volid,
        bootable: source.as_ref().is_some_and(|s| s.bootable),
        multiattach: volume_type.multiattach(),
        shared_targets: false,
        service_uuid: None,
        attachments: Vec::new(),
        provider_location: None,
        admin_metadata: image
            .iter()
            .map(|i| (admin_keys::IMAGE_SOURCE.to_string(), i.id.clone()))
            .collect(),
        metadata,
        image_metadata: Default::default(),
        created_at: time::now(),
        updated_at: None,
    };
    state.db.insert_volume(&vol).await?;
    let source_backend = source.and_then(|s| s.backend);
    let request_spec = RequestSpec::new(&vol, volume_type.extra_specs, source_backend);
    if let Err(e) = state
        .bus
        .cast(
            SCHEDULER_TOPIC,
            &ctx.rc,
            &SchedulerRequest::CreateVolume { request_spec },
        )
        .await
    {
        let op = &volume::CREATE;
        let failed = VolumeChanges {
            status: op.failed,
            ..Default::default()
        };
        let guard = VolumeGuard::status_in(op.in_progress());
        state.db.update_volume(&vol.id, &failed, guard).await?;
        return Err(ApiError(Error::Unavailable(format!(
            "The scheduler cannot be reached; volume {} was set to error: {e}",
            vol.id
        ))));
    }
    tracing::info!(volume = %vol.id, size, image = ?image.as_ref().map(|i| &i.id), "volume accepted");
    let body = views::VolumeBody {
        volume: views::volume_detail(&ctx, &vol, false),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn query(ctx: &Ctx, params: &Params) -> ApiResult<VolumeQuery> {
    list_filters::check(ctx, "volume", params)?;
    let mut q = VolumeQuery {
        project_id: Some(ctx.rc.project_id.clone()),
        name: params
            .get("name")
            .or(params.get("display_name"))
            .map(str::to_string),
        status: params.get("status").map(str::to_string),
        availability_zone: params.get("availability_zone").map(str::to_string),
        like: list_filters::likes(ctx, params, VolumeQuery::LIKE_KEYS)?,
        page: paging::page(params, VolumeQuery::SORT_KEYS)?,
        ..Default::default()
    };
    if list_filters::all_tenants(ctx, params) {
        q.project_id = params.get("project_id").map(str::to_string);
    }
    if ctx.rc.is_admin {
        q.host = params.get("host").map(str::to_string);
    }
    if let Some(b) = params.get("bootable") {
        q.bootable = match validate::parse_bool(b) {
            Some(b) => Some(b),
            None if ctx.version.at_least(2) => {
                return Err(bad_request(format!(
                    "Invalid input received: bootable filter '{b}' must be a boolean."
                )))
            }
            None => None,
        };
    }
    if let Some(s) = params.get("size") {
        q.size = Some(s.parse().map_err(|_| {
            bad_request(format!(
                "Invalid input received: size filter '{s}' must be an integer."
            ))
        })?);
    }
    if let Some(meta) = params.get("metadata") {
        q.metadata = validate::metadata_filter(meta)?;
    }
    // From 3.4; like Cinder, only for those who may filter by it (the
    // resource filters do not list it: administrators).
    let may_filter_images =
        ctx.rc.is_admin || list_filters::filters_of("volume").contains(&"glance_metadata");
    if let Some(meta) = params.get("glance_metadata") {
        if ctx.version.at_least(GLANCE_METADATA_FILTER_VERSION) && may_filter_images {
            q.glance_metadata = validate::metadata_filter(meta)?;
        }
    }
    Ok(q)
}

async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
    view: View,
) -> ApiResult<Response> {
    let q = query(&ctx, &params)?;
    let volumes = state.db.list_volumes(&q).await?;
    let count = match paging::with_count(&ctx, &params)? {
        true => Some(state.db.count_volumes(&q).await?.0),
        false => None,
    };
    let last = volumes.last().map(|v| v.id.as_str());
    let page = &q.page;
    Ok(if view.detail {
        let items = volumes
            .iter()
            .map(|v| views::volume_detail(&ctx, v, true))
            .collect();
        paging::listing(&ctx, "volumes", view, &params, page, items, last)
            .counted(count)
            .into_response()
    } else {
        let items = volumes
            .iter()
            .map(|v| views::volume_summary(&ctx, v))
            .collect();
        paging::listing(&ctx, "volumes", view, &params, page, items, last)
            .counted(count)
            .into_response()
    })
}

async fn summary(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.require_version(12)?;
    let mut q = VolumeQuery {
        project_id: Some(ctx.rc.project_id.clone()),
        ..Default::default()
    };
    if list_filters::all_tenants(&ctx, &params) {
        q.project_id = None;
    }
    let (count, size) = state.db.count_volumes(&q).await?;
    let mut summary = json!({"total_count": count, "total_size": size});
    if ctx.version.at_least(36) {
        summary["metadata"] = json!(state.db.volume_metadata_values(&q).await?);
    }
    Ok(Json(json!({ "volume-summary": summary })))
}

async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Response> {
    let v = visible_volume(&state, &ctx, &p.id).await?;
    Ok(Json(views::VolumeBody {
        volume: views::volume_detail(&ctx, &v, true),
    })
    .into_response())
}

async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let m = volume_object(&ctx, &body, &["volume"], UPDATE_KEYS)?;
    let v = visible_volume(&state, &ctx, &p.id).await?;
    if v.status == VolumeStatus::Maintenance {
        return Err(bad_request(format!(
            "Invalid volume: Volume {} is in maintenance; try again later.",
            v.id
        )));
    }
    let pick = |keys: [&str; 2]| -> Result<Option<Option<String>>, ApiError> {
        for key in keys {
            if m.contains_key(key) {
                return Ok(Some(validate::opt_string(m, key, MAX_TEXT)?));
            }
        }
        Ok(None)
    };
    let changes = VolumeChanges {
        name: pick(["name", "display_name"])?,
        description: pick(["description", "display_description"])?,
        ..Default::default()
    };
    let metadata = m
        .get("metadata")
        .filter(|v| !v.is_null())
        .map(|v| validate::metadata("metadata", v))
        .transpose()?;
    if ctx.version.at_least(STRICT_SCHEMA_VERSION) && m.is_empty() {
        return Err(bad_request(
            "Invalid input for field/attribute volume. Value: {}. {} does not have enough properties.",
        ));
    }
    if changes.name.is_none() && changes.description.is_none() && metadata.is_none() {
        return Err(bad_request(
            "Invalid input received: give at least one of name, description or metadata to update.",
        ));
    }
    state
        .db
        .update_volume(&v.id, &changes, VolumeGuard::default())
        .await?;
    if let Some(meta) = metadata {
        state
            .db
            .set_metadata(scoria_db::MetaKind::Volume, &v.id, &meta, false)
            .await?;
    }
    let v = state.db.get_volume(&v.id).await?;
    Ok(Json(views::VolumeBody {
        volume: views::volume_detail(&ctx, &v, false),
    })
    .into_response())
}

async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    params: Params,
) -> ApiResult<Response> {
    let flag = |key: &str| {
        params
            .get(key)
            .and_then(validate::parse_bool)
            .unwrap_or(false)
    };
    let force = ctx.version.at_least(23) && flag("force");
    if force {
        ctx.require_admin("volume:force_delete")?;
    }
    start_delete(&state, &ctx, &p.id, flag("cascade"), force).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Moves a volume to `deleting` (with its snapshots when `cascade`) and casts the delete.
pub(crate) async fn start_delete(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    cascade: bool,
    force: bool,
) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let op = match force {
        true => &volume::FORCE_DELETE,
        false => &volume::DELETE,
    };
    let statuses = op.from.statuses();
    if v.attach_status == AttachStatus::Attached {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} is attached; detach it before deleting it."
        )));
    }
    if cascade {
        mark_snapshots_deleting(state, id).await?;
    }
    let guard = VolumeGuard {
        statuses: Some(&statuses),
        no_snapshots: !cascade,
        host: None,
    };
    let deleting = VolumeChanges {
        status: op.interim,
        ..Default::default()
    };
    if !state.db.update_volume(id, &deleting, guard).await? {
        let now = state.db.get_volume(id).await?;
        let snaps = state
            .db
            .list_snapshots(&scoria_db::SnapshotQuery {
                volume_id: Some(id.into()),
                ..Default::default()
            })
            .await?;
        let why = if !op.from.contains(now.status) {
            format!(
                "its status is '{}' and must be one of {}",
                now.status,
                op.from.quoted()
            )
        } else if !snaps.is_empty() {
            format!(
                "it has {} snapshot(s); delete them first or use cascade",
                snaps.len()
            )
        } else {
            "it changed while the request was handled; try again".into()
        };
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} cannot be deleted: {why}."
        )));
    }
    match v.backend() {
        Some(backend) => {
            state
                .bus
                .cast(
                    &volume_topic(backend),
                    &ctx.rc,
                    &VolumeRequest::DeleteVolume {
                        volume_id: id.into(),
                    },
                )
                .await?
        }
        // Never placed on a backend: nothing to remove but the record.
        None => state.db.delete_volume(id).await?,
    }
    Ok(())
}

async fn mark_snapshots_deleting(state: &ApiState, volume_id: &str) -> ApiResult<()> {
    let q = scoria_db::SnapshotQuery {
        volume_id: Some(volume_id.into()),
        ..Default::default()
    };
    let op = &snapshot::CASCADE_DELETE;
    let from = op.from.guard();
    let changes = scoria_db::SnapshotChanges {
        status: op.interim,
        ..Default::default()
    };
    for s in state.db.list_snapshots(&q).await? {
        if !state
            .db
            .update_snapshot(&s.id, &changes, from.as_deref())
            .await?
        {
            return Err(bad_request(format!(
                "Invalid volume: snapshot {} is '{}'; with cascade every snapshot must be {}.",
                s.id,
                s.status,
                snapshot::DELETE.from.or_list()
            )));
        }
    }
    Ok(())
}
