//! Volumes and Glance images: the image a new volume is made from
//! (`imageRef` of `POST /volumes`), the image metadata actions
//! (`os-set_image_metadata`, `os-unset_image_metadata`,
//! `os-show_image_metadata`) and `os-volume_upload_image`.
//!
//! The api only talks to Glance to find and check images and to create the
//! record of an upload; the data is copied by the volume manager
//! (`VolumeRequest::CreateVolume` with the request spec's `image_id`,
//! `VolumeRequest::UploadImage`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scoria_core::model::{admin_keys, Metadata, Volume};
use scoria_core::rpc::{volume_topic, ImageUpload, VolumeRequest};
use scoria_core::status::VolumeStatus;
use scoria_core::transitions::volume;
use scoria_core::Error;
use scoria_db::{VolumeChanges, VolumeGuard};
use scoria_glance::{Glance, GlanceError, Image};
use serde_json::{json, Map, Value};

use crate::admin::volume_types::visible_specs;
use crate::http::context::Ctx;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate::{no_other_properties, not_of_type, py_repr, schema_error};
use crate::volumes::crud::visible_volume;
use crate::ApiState;

/// The policy of creating a volume from an image.
pub(crate) const CREATE_FROM_IMAGE_POLICY: &str = "volume:create_from_image";
/// The policy of uploading a volume into a public image (administrators).
const UPLOAD_PUBLIC_POLICY: &str = "volume_extension:volume_actions:upload_public";
/// The first microversion with `visibility` and `protected` on upload.
const UPLOAD_PARAMS_VERSION: u32 = 1;

const GIB: u64 = 1 << 30;

/// The disk formats an upload may ask for.
const DISK_FORMATS: &[&str] = &["raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop"];
/// The visibilities an upload may ask for (3.1).
const VISIBILITIES: &[&str] = &["community", "public", "private", "shared"];
/// Image property prefixes Glance reserves for itself: never copied from a
/// volume's image metadata into an uploaded image.
const RESERVED_NAMESPACES: &[&str] = &["os_glance", "img_signature", "signature_verified"];
/// Attributes of a Glance image record that are not image properties: a
/// volume's image metadata of these names is not passed on to an upload
/// (Glance refuses most of them, and the request decides the others).
const GLANCE_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "owner",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "locations",
    "direct_url",
    "tags",
    "created_at",
    "updated_at",
    "file",
    "schema",
    "self",
    "stores",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
];
/// The keys a volume's image metadata may have (Cinder's schema).
const IMAGE_METADATA_KEY: &str = "^[a-zA-Z0-9-_:. /]{1,255}$";
/// The longest image metadata value (a MySQL `TEXT`).
const MAX_IMAGE_METADATA_VALUE: usize = 65535;

// ------------------------------------------------------------------ Glance

/// The 400 of an image request when no Glance is configured.
fn not_configured() -> ApiError {
    bad_request(
        "Invalid input received: no image service is configured for this Block Storage service \
         (its [DEFAULT] glance_api_servers, or [service_user] credentials to find Glance in the \
         Keystone catalog); images cannot be used.",
    )
}

/// The api's Glance, if one is configured.
fn glance(state: &ApiState) -> ApiResult<&Glance> {
    let g = state.cfg.glance.as_ref();
    if g.config().is_configured() {
        Ok(g)
    } else {
        Err(not_configured())
    }
}

/// The answer to a failed Glance request: Glance unreachable (or failing) is
/// a 503 in Cinder's words, a refusal a 400 with Glance's reason.
pub(crate) fn glance_error(e: GlanceError) -> ApiError {
    match e {
        GlanceError::NotConfigured => not_configured(),
        GlanceError::NotFound(what) => {
            ApiError(Error::NotFound(format!("Image {what} could not be found.")))
        }
        GlanceError::Refused { status, message } if status >= 500 => ApiError(Error::Unavailable(
            format!("Connection to glance failed: Glance answered {status}: {message}"),
        )),
        GlanceError::Refused { status, message } => bad_request(format!(
            "Invalid input received: the image service refused the request ({status}): {message}"
        )),
        GlanceError::Unreachable(why) => ApiError(Error::Unavailable(format!(
            "Connection to glance failed: {why}"
        ))),
    }
}

/// Whether Glance's answer says it cannot serve at all (as opposed to not
/// having, or not showing, the image).
fn is_outage(e: &GlanceError) -> bool {
    match e {
        GlanceError::NotConfigured | GlanceError::Unreachable(_) => true,
        GlanceError::Refused { status, .. } => *status >= 500,
        GlanceError::NotFound(_) => false,
    }
}

// ------------------------------------------------------- create from image

/// Cinder's answer when an `imageRef` names no image the caller can see.
fn invalid_image_ref() -> ApiError {
    bad_request("Invalid image identifier or unable to access requested image.")
}

/// Whether `s` is a UUID in any spelling Cinder accepts as an image id.
fn is_uuid_like(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The image an `imageRef` (or `image_id`) names, as the caller sees it: an
/// image id, a URL ending in one (as Nova sends them), or an image name
/// (which must be unique). Glance not configured or unreachable is an error
/// of its own; an image the caller cannot see is Cinder's 400.
pub(crate) async fn resolve(state: &ApiState, ctx: &Ctx, image_ref: &str) -> ApiResult<Image> {
    let glance = glance(state)?;
    let last = image_ref.rsplit('/').next().unwrap_or(image_ref);
    if is_uuid_like(last) {
        match glance.image(&ctx.rc, last).await {
            Ok(image) => return Ok(image),
            Err(e) if is_outage(&e) => return Err(glance_error(e)),
            // Not an image the caller sees by id: perhaps a name.
            Err(_) => {}
        }
    }
    if image_ref.is_empty() {
        return Err(invalid_image_ref());
    }
    let mut found = match glance.find_by_name(&ctx.rc, image_ref).await {
        Ok(found) => found,
        Err(e) if is_outage(&e) => return Err(glance_error(e)),
        Err(_) => Vec::new(),
    };
    match found.len() {
        0 => Err(invalid_image_ref()),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError(Error::Conflict(format!(
            "Multiple matches found for '{image_ref}', use an ID to be more specific."
        )))),
    }
}

/// GiB needed for `bytes`, rounded up.
fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(GIB)
}

/// Checks, as Cinder does before accepting the volume, that `image` can
/// fill a new volume of `size` GiB: it is active, its data, its `min_disk`
/// and its virtual size fit, and it is a bare disk (the only container
/// Scoria copies into volumes).
pub(crate) fn check_source_image(image: &Image, size: i64) -> ApiResult<()> {
    let id = &image.id;
    if image.status != "active" {
        return Err(bad_request(format!(
            "Invalid input received: Image {id} is not active."
        )));
    }
    let size_u = size.max(0) as u64;
    let data_gb = gib_ceil(image.size.unwrap_or(0));
    if data_gb > size_u {
        return Err(bad_request(format!(
            "Invalid input received: Size of specified image {data_gb}GB is larger than volume size {size}GB."
        )));
    }
    let min_disk = image.min_disk.unwrap_or(0);
    if size < min_disk {
        return Err(bad_request(format!(
            "Invalid input received: Volume size {size}GB cannot be smaller than the image minDisk size {min_disk}GB."
        )));
    }
    if let Some(virtual_size) = image.virtual_size.filter(|v| *v > 0) {
        let virtual_gb = gib_ceil(virtual_size);
        if virtual_gb > size_u {
            return Err(bad_request(format!(
                "Image {id} is unacceptable: Image virtual size is {virtual_gb}GB and doesn't fit in a volume of size {size}GB."
            )));
        }
    }
    let container = image.container_format.as_deref().unwrap_or("bare");
    if container != "bare" {
        return Err(bad_request(format!(
            "Image {id} is unacceptable: its container_format is '{container}'; only images with container_format 'bare' can be copied into volumes."
        )));
    }
    Ok(())
}

/// The volume type (name or id) the image asks its volumes to have.
pub(crate) fn image_volume_type(image: &Image) -> Option<String> {
    image
        .property("cinder_img_volume_type")
        .filter(|t| !t.is_empty())
}

// ----------------------------------------------------------- image metadata

/// Cinder's 404 for image metadata a volume does not have.
fn no_image_metadata(volume_id: &str) -> ApiError {
    ApiError(Error::NotFound(format!(
        "Glance metadata for volume/snapshot {volume_id} cannot be found."
    )))
}

/// Whether `key` is an image metadata key Cinder's schema accepts.
fn valid_key(key: &str) -> bool {
    let n = key.chars().count();
    (1..=255).contains(&n)
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:. /".contains(c))
}

/// Reads the argument of `os-set_image_metadata`: `{"metadata": {k: v}}`,
/// string values, keys of Cinder's image metadata pattern.
pub(crate) fn parse_set(arg: &Value) -> ApiResult<Metadata> {
    let name = "os-set_image_metadata";
    let Value::Object(m) = arg else {
        return Err(schema_error(name, arg, not_of_type(arg, "'object'")));
    };
    if let Some(meta) = m.get("metadata") {
        let Value::Object(pairs) = meta else {
            return Err(schema_error(
                "metadata",
                meta,
                not_of_type(meta, "'object'"),
            ));
        };
        for (k, v) in pairs.iter().filter(|(k, _)| valid_key(k)) {
            match v {
                Value::String(s) if s.chars().count() > MAX_IMAGE_METADATA_VALUE => {
                    return Err(schema_error(
                        k,
                        v,
                        format!("{} is not a 'mysql_text'", py_repr(v)),
                    ))
                }
                Value::String(_) => {}
                other => return Err(schema_error(k, other, not_of_type(other, "'string'"))),
            }
        }
        let mut bad: Vec<String> = pairs
            .keys()
            .filter(|k| !valid_key(k))
            .map(|k| py_repr(&Value::String(k.clone())))
            .collect();
        if !bad.is_empty() {
            bad.sort();
            let verb = if bad.len() == 1 { "does" } else { "do" };
            return Err(schema_error(
                "metadata",
                meta,
                format!(
                    "{} {verb} not match any of the regexes: '{IMAGE_METADATA_KEY}'",
                    bad.join(", ")
                ),
            ));
        }
    } else {
        return Err(schema_error(name, arg, "'metadata' is a required property"));
    }
    no_other_properties(name, m, &["metadata"])?;
    let pairs = m["metadata"].as_object().expect("checked above");
    Ok(pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect())
}

/// Reads the argument of `os-unset_image_metadata`: `{"key": k}`.
pub(crate) fn parse_unset(arg: &Value) -> ApiResult<String> {
    let name = "os-unset_image_metadata";
    let Value::Object(m) = arg else {
        return Err(schema_error(name, arg, not_of_type(arg, "'object'")));
    };
    let key = match m.get("key") {
        None => return Err(schema_error(name, arg, "'key' is a required property")),
        Some(Value::String(k)) if k.is_empty() => {
            return Err(schema_error("key", &m["key"], "'' should be non-empty"))
        }
        Some(v @ Value::String(k)) if k.chars().count() > 255 => {
            return Err(schema_error(
                "key",
                v,
                format!("{} is too long", py_repr(v)),
            ))
        }
        Some(Value::String(k)) => k.clone(),
        Some(other) => return Err(schema_error("key", other, not_of_type(other, "'string'"))),
    };
    no_other_properties(name, m, &["key"])?;
    Ok(key)
}

/// Refuses to change the image metadata of a volume in `maintenance` or
/// `uploading` (`doing`: "Updating" or "Deleting").
fn check_changeable(v: &Volume, doing: &str) -> ApiResult<()> {
    if matches!(
        v.status,
        VolumeStatus::Maintenance | VolumeStatus::Uploading
    ) {
        return Err(bad_request(format!(
            "Invalid volume: {doing} volume metadata is not allowed for volumes in {} status.",
            v.status
        )));
    }
    Ok(())
}

/// `os-set_image_metadata`: merges `meta` into the volume's image metadata;
/// 200 with all of it.
pub(crate) async fn set_image_metadata(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    meta: Metadata,
) -> ApiResult<Response> {
    let v = visible_volume(state, ctx, id).await?;
    check_changeable(&v, "Updating")?;
    let all = state.db.set_volume_image_metadata(&v.id, &meta).await?;
    Ok(Json(json!({ "metadata": all })).into_response())
}

/// `os-unset_image_metadata`: removes one key; 404 when the volume does not
/// have it.
pub(crate) async fn unset_image_metadata(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    key: String,
) -> ApiResult<Response> {
    let v = visible_volume(state, ctx, id).await?;
    if !v.image_metadata.contains_key(&key) {
        return Err(no_image_metadata(&v.id));
    }
    check_changeable(&v, "Deleting")?;
    if !state.db.unset_volume_image_metadata(&v.id, &key).await? {
        return Err(no_image_metadata(&v.id));
    }
    Ok(StatusCode::OK.into_response())
}

/// `os-show_image_metadata`: the volume's image metadata; 404 when it has
/// none.
pub(crate) async fn show_image_metadata(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
) -> ApiResult<Response> {
    let v = visible_volume(state, ctx, id).await?;
    if v.image_metadata.is_empty() {
        return Err(no_image_metadata(&v.id));
    }
    Ok(Json(json!({ "metadata": v.image_metadata })).into_response())
}

// ------------------------------------------------------------------ upload

/// The argument of `os-volume_upload_image`, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UploadArgs {
    pub image_name: String,
    pub force: bool,
    pub disk_format: String,
    pub container_format: String,
    /// 3.1: `private` unless given; before 3.1 Glance's default.
    pub visibility: Option<String>,
    /// 3.1: false unless given; before 3.1 Glance's default.
    pub protected: Option<bool>,
}

/// The spellings of a boolean Cinder's schema accepts.
fn cinder_bool(v: &Value) -> Option<bool> {
    const TRUE: &[&str] = &[
        "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    ];
    const FALSE: &[&str] = &[
        "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
    ];
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if TRUE.contains(&s.as_str()) => Some(true),
        Value::String(s) if FALSE.contains(&s.as_str()) => Some(false),
        _ => None,
    }
}

/// A boolean member of an upload, as Cinder's schema checks it.
fn upload_bool(key: &str, v: &Value) -> ApiResult<bool> {
    if !matches!(v, Value::Bool(_) | Value::String(_)) {
        return Err(schema_error(key, v, not_of_type(v, "'boolean', 'string'")));
    }
    cinder_bool(v).ok_or_else(|| {
        schema_error(
            key,
            v,
            format!(
                "{} is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', \
                 'Yes', 'yes', 'y', 't', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', \
                 'off', 'NO', 'No', 'no', 'n', 'f']",
                py_repr(v)
            ),
        )
    })
}

/// A member of an upload that must be one of `allowed`.
fn upload_enum(key: &str, v: &Value, allowed: &[&str]) -> ApiResult<String> {
    let Value::String(s) = v else {
        return Err(schema_error(key, v, not_of_type(v, "'string'")));
    };
    if allowed.contains(&s.as_str()) {
        return Ok(s.clone());
    }
    let listed: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    Err(schema_error(
        key,
        v,
        format!("{} is not one of [{}]", py_repr(v), listed.join(", ")),
    ))
}

impl UploadArgs {
    /// Reads the argument as Cinder's schema of the caller's microversion
    /// does (`visibility` and `protected` from 3.1), with its defaults.
    pub(crate) fn parse(ctx: &Ctx, arg: &Value) -> ApiResult<Self> {
        let name = "os-volume_upload_image";
        let Value::Object(m) = arg else {
            return Err(schema_error(name, arg, not_of_type(arg, "'object'")));
        };
        let with_params = ctx.version.at_least(UPLOAD_PARAMS_VERSION);
        let image_name = match m.get("image_name") {
            None => None,
            Some(v @ Value::String(s)) => {
                let n = s.chars().count();
                if n == 0 {
                    return Err(schema_error("image_name", v, "'' should be non-empty"));
                }
                if n > 255 {
                    return Err(schema_error(
                        "image_name",
                        v,
                        format!("{} is too long", py_repr(v)),
                    ));
                }
                Some(s.clone())
            }
            Some(other) => {
                return Err(schema_error(
                    "image_name",
                    other,
                    not_of_type(other, "'string'"),
                ))
            }
        };
        let force = m
            .get("force")
            .map(|v| upload_bool("force", v))
            .transpose()?
            .unwrap_or(false);
        let disk_format = m
            .get("disk_format")
            .map(|v| upload_enum("disk_format", v, DISK_FORMATS))
            .transpose()?
            .unwrap_or_else(|| "raw".into());
        let container_format = match m.get("container_format") {
            None | Some(Value::Null) => "bare".to_string(),
            Some(v @ Value::String(s)) if s.chars().count() > 255 => {
                return Err(schema_error(
                    "container_format",
                    v,
                    format!("{} is too long", py_repr(v)),
                ))
            }
            Some(Value::String(s)) if s.trim().is_empty() => "bare".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(schema_error(
                    "container_format",
                    other,
                    not_of_type(other, "'string', 'null'"),
                ))
            }
        };
        let (mut visibility, mut protected) = (None, None);
        if with_params {
            visibility = Some(
                m.get("visibility")
                    .map(|v| upload_enum("visibility", v, VISIBILITIES))
                    .transpose()?
                    .unwrap_or_else(|| "private".into()),
            );
            protected = Some(
                m.get("protected")
                    .map(|v| upload_bool("protected", v))
                    .transpose()?
                    .unwrap_or(false),
            );
        }
        let Some(image_name) = image_name else {
            return Err(schema_error(
                name,
                arg,
                "'image_name' is a required property",
            ));
        };
        let mut allowed = vec!["image_name", "force", "disk_format", "container_format"];
        if with_params {
            allowed.extend(["visibility", "protected"]);
        }
        no_other_properties(name, m, &allowed)?;
        if visibility.as_deref() == Some("public") {
            ctx.require_admin(UPLOAD_PUBLIC_POLICY)?;
        }
        Ok(UploadArgs {
            image_name,
            force,
            disk_format,
            container_format,
            visibility,
            protected,
        })
    }
}

/// The body of `POST /v2/images` for uploading `v`: the requested name and
/// formats (and visibility and protection, 3.1), `min_disk` the volume's
/// size, `min_ram` of its image metadata, and as image properties the rest
/// of its image metadata but for `core_properties`, Glance's reserved
/// namespaces and the attributes of Glance's own record.
pub(crate) fn image_body(args: &UploadArgs, v: &Volume, core_properties: &[String]) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.image_name));
    body.insert("disk_format".into(), json!(args.disk_format));
    body.insert("container_format".into(), json!(args.container_format));
    if let Some(vis) = &args.visibility {
        body.insert("visibility".into(), json!(vis));
    }
    if let Some(p) = args.protected {
        body.insert("protected".into(), json!(p));
    }
    body.insert("min_disk".into(), json!(v.size));
    if let Some(ram) = v
        .image_metadata
        .get("min_ram")
        .and_then(|r| r.trim().parse::<u64>().ok())
    {
        body.insert("min_ram".into(), json!(ram));
    }
    for (k, val) in &v.image_metadata {
        let core = core_properties.iter().any(|c| c == k);
        let reserved = RESERVED_NAMESPACES.iter().any(|ns| k.starts_with(ns));
        if core || reserved || GLANCE_FIELDS.contains(&k.as_str()) {
            continue;
        }
        body.insert(k.clone(), json!(val));
    }
    Value::Object(body)
}

/// Deletes an image the upload made but will not fill.
async fn discard(glance: &Glance, ctx: &Ctx, image_id: &str) {
    if let Err(e) = glance.delete(&ctx.rc, image_id).await {
        tracing::error!(image = %image_id, error = %e, "could not delete the image of an upload that did not start");
    }
}

/// `os-volume_upload_image`: creates the Glance image, moves the volume to
/// `uploading` (keeping the image in its admin metadata) and casts the copy
/// to the volume's backend; 202 with Cinder's answer.
pub(crate) async fn upload(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    args: UploadArgs,
) -> ApiResult<Response> {
    let v = visible_volume(state, ctx, id).await?;
    // Without enable_force_upload, force is ignored (as in Cinder).
    let op = match args.force && state.cfg.enable_force_upload {
        true => &volume::UPLOAD_IMAGE_FORCED,
        false => &volume::UPLOAD_IMAGE,
    };
    let wrong_status = || {
        bad_request(format!(
            "Invalid volume: Volume {id} status must be {}",
            op.from.or_list()
        ))
    };
    if !op.from.contains(v.status) {
        return Err(wrong_status());
    }
    let glance = glance(state)?;
    let backend = v
        .backend()
        .ok_or_else(|| ApiError(Error::Internal(format!("volume {id} has no host"))))?
        .to_string();
    let body = image_body(&args, &v, &glance.config().core_properties);
    let image = glance.create(&ctx.rc, &body).await.map_err(glance_error)?;
    let mut admin = v.admin_metadata.clone();
    admin.insert(admin_keys::IMAGE_UPLOAD.into(), image.id.clone());
    let uploading = VolumeChanges {
        status: op.interim,
        previous_status: Some(Some(v.status)),
        admin_metadata: Some(admin),
        ..Default::default()
    };
    let from = op.from.statuses();
    if !state
        .db
        .update_volume(&v.id, &uploading, VolumeGuard::status_in(&from))
        .await?
    {
        discard(glance, ctx, &image.id).await;
        return Err(wrong_status());
    }
    let request = VolumeRequest::UploadImage {
        volume_id: v.id.clone(),
        image: ImageUpload {
            image_id: image.id.clone(),
            disk_format: image
                .disk_format
                .clone()
                .unwrap_or_else(|| args.disk_format.clone()),
            container_format: image
                .container_format
                .clone()
                .unwrap_or_else(|| args.container_format.clone()),
        },
    };
    if let Err(e) = state
        .bus
        .cast(&volume_topic(&backend), &ctx.rc, &request)
        .await
    {
        discard(glance, ctx, &image.id).await;
        let back = VolumeChanges {
            status: Some(v.status),
            previous_status: Some(None),
            admin_metadata: Some(v.admin_metadata.clone()),
            ..Default::default()
        };
        let guard = VolumeGuard::status_in(op.in_progress());
        state.db.update_volume(&v.id, &back, guard).await?;
        return Err(ApiError(Error::Unavailable(format!(
            "The volume service of {backend} cannot be reached; the upload of volume {id} did not start: {e}"
        ))));
    }
    tracing::info!(volume = %v.id, image = %image.id, "upload to image accepted");
    let now = state.db.get_volume(&v.id).await?;
    let volume_type = match &v.volume_type_id {
        Some(t) => state
            .db
            .get_volume_type(t)
            .await
            .ok()
            .map(|t| upload_type_view(ctx, &t)),
        None => None,
    };
    let mut answer = json!({
        "id": v.id,
        "updated_at": now.updated_at,
        "status": VolumeStatus::Uploading.as_str(),
        "display_description": v.description,
        "size": v.size,
        "volume_type": volume_type,
        "image_id": image.id,
        "container_format": image.container_format.clone().unwrap_or(args.container_format),
        "disk_format": image.disk_format.clone().unwrap_or(args.disk_format),
        "image_name": image.name,
    });
    if let Some(p) = image.rest.get("protected") {
        answer["protected"] = p.clone();
    }
    if let Some(vis) = &image.visibility {
        answer["visibility"] = json!(vis);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "os-volume_upload_image": answer })),
    )
        .into_response())
}

/// The volume type as the upload's answer shows it: Cinder's type record
/// (extra specs as the caller may see them).
fn upload_type_view(ctx: &Ctx, t: &scoria_core::model::VolumeType) -> Value {
    json!({
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "deleted_at": null,
        "deleted": false,
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "is_public": t.is_public,
        "extra_specs": visible_specs(ctx.rc.is_admin, &t.extra_specs),
        "qos_specs_id": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ApiError) -> (u16, String) {
        match e.0 {
            Error::BadRequest(m) => (400, m),
            Error::NotFound(m) => (404, m),
            Error::Conflict(m) => (409, m),
            Error::Forbidden(m) => (403, m),
            Error::Unavailable(m) => (503, m),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn image(v: Value) -> Image {
        let mut base = json!({
            "id": "11111111-2222-3333-4444-555555555555",
            "name": "cirros",
            "status": "active",
            "size": 40 << 20,
            "min_disk": 0,
            "disk_format": "qcow2",
            "container_format": "bare",
        });
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_fitting_active_bare_image_is_accepted() {
        assert!(check_source_image(&image(json!({})), 1).is_ok());
        let exact = image(json!({"size": 1u64 << 30, "virtual_size": 1u64 << 30}));
        assert!(check_source_image(&exact, 1).is_ok());
    }

    #[test]
    fn source_images_are_checked_with_cinders_messages() {
        let id = "11111111-2222-3333-4444-555555555555";
        let cases = [
            (
                json!({"status": "queued", "size": null}),
                1,
                format!("Invalid input received: Image {id} is not active."),
            ),
            (
                json!({"size": (2u64 << 30) + 1}),
                2,
                "Invalid input received: Size of specified image 3GB is larger than volume size 2GB.".to_string(),
            ),
            (
                json!({"min_disk": 5}),
                4,
                "Invalid input received: Volume size 4GB cannot be smaller than the image minDisk size 5GB.".to_string(),
            ),
            (
                json!({"virtual_size": 3u64 << 30}),
                2,
                format!("Image {id} is unacceptable: Image virtual size is 3GB and doesn't fit in a volume of size 2GB."),
            ),
        ];
        for (fields, size, want) in cases {
            let (code, got) = message(check_source_image(&image(fields), size).unwrap_err());
            assert_eq!((code, got), (400, want));
        }
        for container in ["ova", "ovf", "docker", "ami"] {
            let (code, got) = message(
                check_source_image(&image(json!({"container_format": container})), 1).unwrap_err(),
            );
            assert_eq!(code, 400);
            assert!(got.contains(&format!("'{container}'")), "{got}");
            assert!(
                got.contains("only images with container_format 'bare'"),
                "{got}"
            );
        }
    }

    #[test]
    fn image_volume_type_property() {
        assert_eq!(image_volume_type(&image(json!({}))), None);
        let typed = image(json!({"cinder_img_volume_type": "fast"}));
        assert_eq!(image_volume_type(&typed).as_deref(), Some("fast"));
    }

    #[test]
    fn glance_errors_map_to_answers() {
        assert_eq!(message(glance_error(GlanceError::NotConfigured)).0, 400);
        let (code, m) = message(glance_error(GlanceError::Unreachable("refused".into())));
        assert_eq!(
            (code, m.as_str()),
            (503, "Connection to glance failed: refused")
        );
        let (code, m) = message(glance_error(GlanceError::Refused {
            status: 403,
            message: "Attribute 'owner' is reserved.".into(),
        }));
        assert_eq!(code, 400);
        assert!(m.contains("Attribute 'owner' is reserved."), "{m}");
        let outage = GlanceError::Refused {
            status: 500,
            message: "boom".into(),
        };
        assert!(is_outage(&outage));
        assert_eq!(message(glance_error(outage)).0, 503);
        assert!(!is_outage(&GlanceError::NotFound("x".into())));
    }

    #[test]
    fn set_image_metadata_bodies() {
        let ok = parse_set(&json!({"metadata": {"hw_disk_bus": "scsi", "a:b c/d.e-f_g": "1"}}));
        assert_eq!(ok.unwrap().len(), 2);
        let cases = [
            (
                json!("x"),
                "Invalid input for field/attribute os-set_image_metadata. Value: x. 'x' is not of type 'object'",
            ),
            (
                json!({}),
                "Invalid input for field/attribute os-set_image_metadata. Value: {}. 'metadata' is a required property",
            ),
            (
                json!({"metadata": []}),
                "Invalid input for field/attribute metadata. Value: []. [] is not of type 'object'",
            ),
            (
                json!({"metadata": {"k": 1}}),
                "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'",
            ),
            (
                json!({"metadata": {"bad!": "v"}}),
                "Invalid input for field/attribute metadata. Value: {'bad!': 'v'}. 'bad!' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'",
            ),
            (
                json!({"metadata": {}, "x": 1}),
                "Invalid input for field/attribute os-set_image_metadata. Value: {'metadata': {}, 'x': 1}. Additional properties are not allowed ('x' was unexpected)",
            ),
        ];
        for (arg, want) in cases {
            assert_eq!(
                message(parse_set(&arg).unwrap_err()),
                (400, want.to_string())
            );
        }
    }

    #[test]
    fn unset_image_metadata_bodies() {
        assert_eq!(parse_unset(&json!({"key": "k"})).unwrap(), "k");
        let cases = [
            (
                json!({}),
                "Invalid input for field/attribute os-unset_image_metadata. Value: {}. 'key' is a required property",
            ),
            (
                json!({"key": ""}),
                "Invalid input for field/attribute key. Value: . '' should be non-empty",
            ),
            (
                json!({"key": 5}),
                "Invalid input for field/attribute key. Value: 5. 5 is not of type 'string'",
            ),
            (
                json!({"key": "k", "other": 1}),
                "Invalid input for field/attribute os-unset_image_metadata. Value: {'key': 'k', 'other': 1}. Additional properties are not allowed ('other' was unexpected)",
            ),
        ];
        for (arg, want) in cases {
            assert_eq!(
                message(parse_unset(&arg).unwrap_err()),
                (400, want.to_string())
            );
        }
    }

    #[test]
    fn upload_arguments_and_defaults() {
        let base = Ctx::for_test(false, 0);
        let args = UploadArgs::parse(&base, &json!({"image_name": "img"})).unwrap();
        assert_eq!(
            args,
            UploadArgs {
                image_name: "img".into(),
                force: false,
                disk_format: "raw".into(),
                container_format: "bare".into(),
                visibility: None,
                protected: None,
            }
        );
        let v31 = Ctx::for_test(false, 1);
        let args = UploadArgs::parse(
            &v31,
            &json!({"image_name": "img", "force": "True", "disk_format": "qcow2", "protected": true}),
        )
        .unwrap();
        assert!(args.force);
        assert_eq!(args.disk_format, "qcow2");
        assert_eq!(args.visibility.as_deref(), Some("private"));
        assert_eq!(args.protected, Some(true));

        let refused = |ctx: &Ctx, arg: Value| message(UploadArgs::parse(ctx, &arg).unwrap_err());
        assert_eq!(
            refused(&base, json!({"force": false})).1,
            "Invalid input for field/attribute os-volume_upload_image. Value: {'force': False}. 'image_name' is a required property"
        );
        assert_eq!(
            refused(&base, json!({"image_name": "i", "disk_format": "iso"})).1,
            "Invalid input for field/attribute disk_format. Value: iso. 'iso' is not one of ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop']"
        );
        assert_eq!(
            refused(&base, json!({"image_name": "i", "visibility": "private"})).1,
            "Invalid input for field/attribute os-volume_upload_image. Value: {'image_name': 'i', 'visibility': 'private'}. Additional properties are not allowed ('visibility' was unexpected)"
        );
        assert_eq!(
            refused(&v31, json!({"image_name": "i", "visibility": "everyone"})).1,
            "Invalid input for field/attribute visibility. Value: everyone. 'everyone' is not one of ['community', 'public', 'private', 'shared']"
        );
        assert!(refused(&base, json!({"image_name": "i", "force": "maybe"}))
            .1
            .starts_with("Invalid input for field/attribute force. Value: maybe. 'maybe' is not one of [True, 'True'"));
        assert_eq!(
            refused(&base, json!({"image_name": ""})).1,
            "Invalid input for field/attribute image_name. Value: . '' should be non-empty"
        );
        // Public images are for administrators.
        let public = json!({"image_name": "i", "visibility": "public"});
        assert_eq!(refused(&v31, public.clone()).0, 403);
        assert!(UploadArgs::parse(&Ctx::for_test(true, 1), &public).is_ok());
    }

    fn volume_with(image_metadata: &[(&str, &str)]) -> Volume {
        Volume {
            id: "v1".into(),
            project_id: "p1".into(),
            user_id: "u".into(),
            name: None,
            description: Some("d".into()),
            size: 3,
            status: VolumeStatus::Available,
            previous_status: None,
            attach_status: scoria_core::status::AttachStatus::Detached,
            host: None,
            availability_zone: "nova".into(),
            volume_type_id: None,
            volume_type_name: None,
            snapshot_id: None,
            source_volid: None,
            bootable: true,
            multiattach: false,
            shared_targets: false,
            service_uuid: None,
            attachments: Vec::new(),
            provider_location: None,
            admin_metadata: Metadata::new(),
            metadata: Metadata::new(),
            image_metadata: image_metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: "2026-01-01T00:00:00.000000".into(),
            updated_at: None,
        }
    }

    #[test]
    fn upload_body_carries_the_image_metadata_but_core_and_reserved_keys() {
        let core: Vec<String> = [
            "checksum",
            "container_format",
            "disk_format",
            "image_name",
            "image_id",
            "min_disk",
            "min_ram",
            "name",
            "size",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v = volume_with(&[
            ("image_id", "old"),
            ("image_name", "cirros"),
            ("checksum", "abc"),
            ("min_ram", "64"),
            ("size", "1024"),
            ("hw_disk_bus", "scsi"),
            ("os_glance_importing_to_stores", "x"),
            ("img_signature", "sig"),
            ("visibility", "public"),
        ]);
        let args = UploadArgs {
            image_name: "up".into(),
            force: false,
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            visibility: Some("private".into()),
            protected: Some(false),
        };
        let body = image_body(&args, &v, &core);
        assert_eq!(
            body,
            json!({
                "name": "up",
                "disk_format": "qcow2",
                "container_format": "bare",
                "visibility": "private",
                "protected": false,
                "min_disk": 3,
                "min_ram": 64,
                "hw_disk_bus": "scsi",
            })
        );
        // Before 3.1 Glance picks visibility and protection itself.
        let old = UploadArgs {
            visibility: None,
            protected: None,
            ..args
        };
        let body = image_body(
            &old,
            &volume_with(&[("visibility", "public"), ("owner", "x")]),
            &core,
        );
        assert_eq!(
            body,
            json!({"name": "up", "disk_format": "qcow2", "container_format": "bare", "min_disk": 3})
        );
    }

    #[test]
    fn image_refs_that_are_ids() {
        assert!(is_uuid_like("11111111-2222-3333-4444-555555555555"));
        assert!(is_uuid_like("11111111222233334444555555555555"));
        assert!(!is_uuid_like("cirros"));
    }
}
