//! Volumes.

use std::collections::BTreeMap;

use scoria_core::host::Host;
use scoria_core::model::{AttachedTo, Metadata, Volume};
use scoria_core::status::{AttachStatus, VolumeStatus};
use scoria_core::{time, Error};
use sqlx::any::AnyRow;

use crate::image_metadata;
use crate::metadata::{self, MetaKind};
use crate::query::{check_marker, Like, LikeKey, Page, SortKey, Sql};
use crate::{db_err, get_i64, get_str, Db, Result};

/// Filters of a volume listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct VolumeQuery {
    /// Restrict to one project (`None` = all projects).
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub availability_zone: Option<String>,
    pub bootable: Option<bool>,
    pub size: Option<i64>,
    pub host: Option<String>,
    /// Every pair must be present in the volume's metadata.
    pub metadata: Vec<(String, String)>,
    /// Every pair must be present in the volume's image metadata
    /// (`glance_metadata`, 3.4).
    pub glance_metadata: Vec<(String, String)>,
    /// Substring filters (3.34).
    pub like: Vec<Like>,
    pub page: Page,
}

impl VolumeQuery {
    /// Keys a volume listing may filter by substring.
    pub const LIKE_KEYS: &'static [LikeKey] = &[
        LikeKey::new("name", "name"),
        LikeKey::new("description", "description"),
        LikeKey::new("status", "status"),
        LikeKey::new("availability_zone", "availability_zone"),
    ];

    /// Keys a volume listing may be sorted by.
    pub const SORT_KEYS: &'static [SortKey] = &[
        SortKey::column("created_at", "created_at"),
        SortKey::nullable("updated_at", "updated_at"),
        SortKey::column("id", "id"),
        SortKey::nullable("name", "name"),
        SortKey::nullable("display_name", "name"),
        SortKey::column("size", "size"),
        SortKey::column("status", "status"),
        SortKey::column("availability_zone", "availability_zone"),
        SortKey::column("bootable", "bootable"),
    ];
}

/// Fields to change on a volume; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct VolumeChanges {
    pub status: Option<VolumeStatus>,
    pub previous_status: Option<Option<VolumeStatus>>,
    pub attach_status: Option<AttachStatus>,
    pub host: Option<Option<Host>>,
    pub size: Option<i64>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub bootable: Option<bool>,
    pub provider_location: Option<Option<String>>,
    pub admin_metadata: Option<Metadata>,
    pub shared_targets: Option<bool>,
    pub service_uuid: Option<Option<String>>,
}

impl VolumeChanges {
    /// Only a new status.
    pub fn status(status: VolumeStatus) -> Self {
        VolumeChanges {
            status: Some(status),
            ..Default::default()
        }
    }
}

/// Conditions a volume must meet for an update to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct VolumeGuard<'a> {
    /// The volume's status must be one of these.
    pub statuses: Option<&'a [VolumeStatus]>,
    /// The volume must have no snapshots.
    pub no_snapshots: bool,
    /// The volume's host must be this (`Some(None)`: not placed yet).
    pub host: Option<Option<&'a Host>>,
}

impl<'a> VolumeGuard<'a> {
    /// Only apply when the status is one of `statuses`.
    pub fn status_in(statuses: &'a [VolumeStatus]) -> Self {
        VolumeGuard {
            statuses: Some(statuses),
            ..Default::default()
        }
    }
}

/// Volumes with their type's name.
const FROM: &str = "volumes v LEFT JOIN volume_types t ON t.id = v.volume_type_id";

/// Stored columns of a volume, read as one JSON document per row: a row then
/// crosses the driver as a single value instead of twenty, and the metadata
/// comes along in the same query.
const FIELDS: &[&str] = &[
    "id",
    "project_id",
    "user_id",
    "name",
    "description",
    "size",
    "status",
    "previous_status",
    "attach_status",
    "host",
    "availability_zone",
    "volume_type_id",
    "snapshot_id",
    "source_volid",
    "bootable",
    "multiattach",
    "shared_targets",
    "service_uuid",
    "provider_location",
    "admin_metadata",
    "created_at",
    "updated_at",
];

/// The shape of the document [`select`] produces.
#[derive(serde::Deserialize)]
struct VolumeDoc {
    id: String,
    project_id: String,
    user_id: String,
    name: Option<String>,
    description: Option<String>,
    size: i64,
    status: String,
    previous_status: Option<String>,
    attach_status: String,
    host: Option<String>,
    availability_zone: String,
    volume_type_id: Option<String>,
    volume_type_name: Option<String>,
    snapshot_id: Option<String>,
    source_volid: Option<String>,
    bootable: i64,
    multiattach: i64,
    shared_targets: i64,
    service_uuid: Option<String>,
    provider_location: Option<String>,
    admin_metadata: String,
    created_at: String,
    updated_at: Option<String>,
    metadata: Metadata,
    image_metadata: Metadata,
    attachments: Vec<AttachedTo>,
}

/// `SELECT <document> AS doc FROM volumes v …` for this database.
fn select(db: &Db) -> String {
    let mut pairs: Vec<String> = FIELDS.iter().map(|f| format!("'{f}', v.{f}")).collect();
    pairs.push("'volume_type_name', t.name".into());
    let meta = db
        .dialect
        .json_map("FROM volume_metadata m WHERE m.volume_id = v.id");
    pairs.push(format!("'metadata', {meta}"));
    let image_meta = db
        .dialect
        .json_map("FROM volume_glance_metadata g WHERE g.volume_id = v.id");
    pairs.push(format!("'image_metadata', {image_meta}"));
    let attached = db.dialect.json_rows(
        "'attachment_id', a.id, 'instance_uuid', a.instance_uuid, \
         'attached_host', a.attached_host, 'mountpoint', a.mountpoint, \
         'attached_at', a.attached_at",
        "FROM volume_attachments a WHERE a.volume_id = v.id AND a.attach_status = 'attached'",
    );
    // Only an attached volume has attachments to list: skip the subquery
    // for every other row of a listing.
    pairs.push(format!(
        "'attachments', CASE WHEN v.attach_status = 'attached' THEN {attached} ELSE {} END",
        db.dialect.json_empty_array()
    ));
    format!(
        "SELECT {} AS doc FROM {FROM}",
        db.dialect.json_object(&pairs.join(", "))
    )
}

fn from_row(row: &AnyRow) -> Result<Volume> {
    let doc: VolumeDoc = serde_json::from_str(&get_str(row, "doc")?)
        .map_err(|e| Error::Internal(format!("malformed volume row: {e}")))?;
    let status = |s: String| s.parse().map_err(Error::Internal);
    Ok(Volume {
        id: doc.id,
        project_id: doc.project_id,
        user_id: doc.user_id,
        name: doc.name,
        description: doc.description,
        size: doc.size,
        status: status(doc.status)?,
        previous_status: doc.previous_status.map(status).transpose()?,
        attach_status: doc.attach_status.parse().map_err(Error::Internal)?,
        host: doc
            .host
            .map(|h| h.parse())
            .transpose()
            .map_err(Error::Internal)?,
        availability_zone: doc.availability_zone,
        volume_type_id: doc.volume_type_id,
        volume_type_name: doc.volume_type_name,
        snapshot_id: doc.snapshot_id,
        source_volid: doc.source_volid,
        bootable: doc.bootable != 0,
        multiattach: doc.multiattach != 0,
        shared_targets: doc.shared_targets != 0,
        service_uuid: doc.service_uuid,
        attachments: doc.attachments,
        provider_location: doc.provider_location,
        admin_metadata: serde_json::from_str(&doc.admin_metadata).unwrap_or_default(),
        metadata: doc.metadata,
        image_metadata: doc.image_metadata,
        created_at: doc.created_at,
        updated_at: doc.updated_at,
    })
}

fn push_filters(sql: &mut Sql, q: &VolumeQuery) {
    sql.push(" WHERE 1 = 1");
    let text_filters = [
        ("v.project_id", &q.project_id),
        ("v.name", &q.name),
        ("v.status", &q.status),
        ("v.availability_zone", &q.availability_zone),
        ("v.host", &q.host),
    ];
    for (col, value) in text_filters {
        if let Some(value) = value {
            sql.push(&format!(" AND {col} = ")).bind(value.as_str());
        }
    }
    if let Some(b) = q.bootable {
        sql.push(" AND v.bootable = ").bind(b);
    }
    if let Some(size) = q.size {
        sql.push(" AND v.size = ").bind(size);
    }
    for (k, v) in &q.metadata {
        sql.push(
            " AND EXISTS (SELECT 1 FROM volume_metadata vm WHERE vm.volume_id = v.id AND vm.key = ",
        )
        .bind(k.as_str())
        .push(" AND vm.value = ")
        .bind(v.as_str())
        .push(")");
    }
    for (k, v) in &q.glance_metadata {
        sql.push(
            " AND EXISTS (SELECT 1 FROM volume_glance_metadata gm WHERE gm.volume_id = v.id AND gm.key = ",
        )
        .bind(k.as_str())
        .push(" AND gm.value = ")
        .bind(v.as_str())
        .push(")");
    }
    sql.push_likes("v", &q.like);
}

impl Db {
    /// Stores a new volume with its metadata. A volume made from a snapshot
    /// or a source volume gets the image metadata of that snapshot or volume
    /// in the same transaction; `v.image_metadata` itself is not written
    /// (see [`Db::replace_volume_image_metadata`]).
    pub async fn insert_volume(&self, v: &Volume) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut sql = Sql::new(
            "INSERT INTO volumes (id, project_id, user_id, name, description, size, status, \
             previous_status, attach_status, host, availability_zone, volume_type_id, snapshot_id, \
             source_volid, bootable, multiattach, shared_targets, service_uuid, provider_location, \
             admin_metadata, created_at, updated_at) VALUES (",
        );
        sql.bind(&v.id)
            .push(", ")
            .bind(&v.project_id)
            .push(", ")
            .bind(&v.user_id);
        sql.push(", ")
            .bind(v.name.clone())
            .push(", ")
            .bind(v.description.clone());
        sql.push(", ")
            .bind(v.size)
            .push(", ")
            .bind(v.status.as_str());
        sql.push(", ")
            .bind(v.previous_status.map(|s| s.to_string()));
        sql.push(", ")
            .bind(v.attach_status.as_str())
            .push(", ")
            .bind(v.host.as_ref().map(Host::to_string));
        sql.push(", ")
            .bind(&v.availability_zone)
            .push(", ")
            .bind(v.volume_type_id.clone());
        sql.push(", ")
            .bind(v.snapshot_id.clone())
            .push(", ")
            .bind(v.source_volid.clone());
        sql.push(", ")
            .bind(v.bootable)
            .push(", ")
            .bind(v.multiattach);
        sql.push(", ")
            .bind(v.shared_targets)
            .push(", ")
            .bind(v.service_uuid.clone());
        sql.push(", ").bind(v.provider_location.clone());
        sql.push(", ")
            .bind(json(&v.admin_metadata))
            .push(", ")
            .bind(&v.created_at);
        sql.push(", ").bind(v.updated_at.clone()).push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        metadata::write(&mut tx, MetaKind::Volume, &v.id, &v.metadata, true).await?;
        image_metadata::copy_to_new_volume(&mut tx, v).await?;
        tx.commit().await.map_err(db_err)
    }

    /// One volume with its metadata, or 404.
    pub async fn get_volume(&self, id: &str) -> Result<Volume> {
        let mut sql = Sql::new(&select(self));
        sql.push(" WHERE v.id = ").bind(id);
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        from_row(&row.ok_or_else(|| Error::not_found("Volume", id))?)
    }

    /// A page of volumes matching `q`, with their metadata.
    pub async fn list_volumes(&self, q: &VolumeQuery) -> Result<Vec<Volume>> {
        check_marker(&self.pool, "volumes", &q.page.marker).await?;
        let mut sql = Sql::new(&select(self));
        push_filters(&mut sql, q);
        q.page.apply(&mut sql, "volumes", "v");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// How many volumes match `q` (ignoring its page), and their total size in GiB.
    pub async fn count_volumes(&self, q: &VolumeQuery) -> Result<(i64, i64)> {
        let mut sql = Sql::new(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(v.size), 0) AS BIGINT) AS gb FROM volumes v",
        );
        push_filters(&mut sql, q);
        let row = sql.query().fetch_one(&self.pool).await.map_err(db_err)?;
        Ok((get_i64(&row, "n")?, get_i64(&row, "gb")?))
    }

    /// The distinct values of each metadata key over the volumes matching `q`
    /// (ignoring its page), sorted.
    pub async fn volume_metadata_values(
        &self,
        q: &VolumeQuery,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let mut sql = Sql::new(
            "SELECT DISTINCT m.key AS k, m.value AS val FROM volume_metadata m \
             JOIN volumes v ON v.id = m.volume_id",
        );
        push_filters(&mut sql, q);
        sql.push(" ORDER BY m.key, m.value");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in &rows {
            out.entry(get_str(row, "k")?)
                .or_default()
                .push(get_str(row, "val")?);
        }
        Ok(out)
    }

    /// Applies `changes` if the volume meets `guard`; false when it did not
    /// (the caller lost a race or the volume is in the wrong state).
    pub async fn update_volume(
        &self,
        id: &str,
        changes: &VolumeChanges,
        guard: VolumeGuard<'_>,
    ) -> Result<bool> {
        let mut sql = Sql::new("UPDATE volumes SET updated_at = ");
        sql.bind(time::now());
        let c = changes;
        if let Some(s) = c.status {
            sql.push(", status = ").bind(s.as_str());
        }
        if let Some(s) = c.previous_status {
            sql.push(", previous_status = ")
                .bind(s.map(|s| s.to_string()));
        }
        if let Some(s) = c.attach_status {
            sql.push(", attach_status = ").bind(s.as_str());
        }
        if let Some(h) = &c.host {
            sql.push(", host = ").bind(h.as_ref().map(Host::to_string));
        }
        if let Some(size) = c.size {
            sql.push(", size = ").bind(size);
        }
        if let Some(n) = &c.name {
            sql.push(", name = ").bind(n.clone());
        }
        if let Some(d) = &c.description {
            sql.push(", description = ").bind(d.clone());
        }
        if let Some(b) = c.bootable {
            sql.push(", bootable = ").bind(b);
        }
        if let Some(p) = &c.provider_location {
            sql.push(", provider_location = ").bind(p.clone());
        }
        if let Some(m) = &c.admin_metadata {
            sql.push(", admin_metadata = ").bind(json(m));
        }
        if let Some(b) = c.shared_targets {
            sql.push(", shared_targets = ").bind(b);
        }
        if let Some(u) = &c.service_uuid {
            sql.push(", service_uuid = ").bind(u.clone());
        }
        sql.push(" WHERE id = ").bind(id);
        if let Some(statuses) = guard.statuses {
            let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            sql.push(" AND ").push_in("status", &names);
        }
        match guard.host {
            Some(Some(h)) => {
                sql.push(" AND host = ").bind(h.as_str());
            }
            Some(None) => {
                sql.push(" AND host IS NULL");
            }
            None => {}
        }
        if guard.no_snapshots {
            sql.push(" AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.volume_id = volumes.id)");
        }
        let done = sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a volume with its metadata, image metadata and attachments.
    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        metadata::clear(&mut tx, MetaKind::Volume, id).await?;
        metadata::clear(&mut tx, MetaKind::VolumeImage, id).await?;
        let mut attachments = Sql::new("DELETE FROM volume_attachments WHERE volume_id = ");
        attachments.bind(id);
        attachments
            .query()
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut sql = Sql::new("DELETE FROM volumes WHERE id = ");
        sql.bind(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Volumes in any of `statuses`, optionally only those on `backend` (`host@backend`)
    /// or only those not yet placed (`backend = Some("")`).
    pub async fn volumes_in_status(
        &self,
        statuses: &[VolumeStatus],
        backend: Option<&str>,
    ) -> Result<Vec<Volume>> {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let mut sql = Sql::new(&select(self));
        sql.push(" WHERE ");
        sql.push_in("v.status", &names);
        match backend {
            Some("") => {
                sql.push(" AND v.host IS NULL");
            }
            Some(b) => {
                sql.push(" AND (v.host = ")
                    .bind(b)
                    .push(" OR v.host LIKE ")
                    .bind(format!("{b}#%"))
                    .push(")");
            }
            None => {}
        }
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Sum of volume sizes per pool (`host@backend#pool`) of one backend.
    pub async fn allocated_by_pool(&self, backend: &str) -> Result<Vec<(String, i64)>> {
        let mut sql = Sql::new(
            "SELECT host, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS gb FROM volumes WHERE host LIKE ",
        );
        sql.bind(format!("{backend}#%")).push(" GROUP BY host");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((get_str(r, "host")?, get_i64(r, "gb")?)))
            .collect()
    }

    /// Sum of volume sizes per pool (`host@backend#pool`), over every backend.
    pub async fn allocated_by_pool_all(&self) -> Result<Vec<(String, i64)>> {
        let sql = Sql::new(
            "SELECT host, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS gb FROM volumes \
             WHERE host IS NOT NULL GROUP BY host",
        );
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((get_str(r, "host")?, get_i64(r, "gb")?)))
            .collect()
    }

    /// Whether any volume uses the type.
    pub async fn volume_type_in_use(&self, type_id: &str) -> Result<bool> {
        let mut sql = Sql::new("SELECT id FROM volumes WHERE volume_type_id = ");
        sql.bind(type_id).push(" LIMIT 1");
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }
}

fn json(m: &Metadata) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

impl Db {
    /// The extra specs of `v`'s volume type: none when it has no type or the
    /// type is gone.
    pub async fn type_extra_specs(&self, v: &Volume) -> Metadata {
        match &v.volume_type_id {
            Some(t) => self
                .get_volume_type(t)
                .await
                .map(|t| t.extra_specs)
                .unwrap_or_default(),
            None => Metadata::new(),
        }
    }

    /// The backend (`host@backend`) that holds what `v` is copied from: the
    /// volume of its snapshot, or its source volume.
    pub async fn source_backend(&self, v: &Volume) -> Result<Option<String>> {
        let source = if let Some(snap) = &v.snapshot_id {
            let snap = self.get_snapshot(snap).await?;
            self.get_volume(&snap.volume_id).await?
        } else if let Some(src) = &v.source_volid {
            self.get_volume(src).await?
        } else {
            return Ok(None);
        };
        Ok(source.host.map(|h| h.backend().to_string()))
    }
}
