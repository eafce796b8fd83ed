//! Snapshots.

use scoria_core::model::{Metadata, Snapshot};
use scoria_core::status::{SnapshotStatus, VolumeStatus};
use scoria_core::{time, Error};
use sqlx::any::AnyRow;

use crate::image_metadata;
use crate::metadata::{self, load_many, MetaKind};
use crate::query::{check_marker, Like, LikeKey, Page, SortKey, Sql};
use crate::{db_err, get_i64, get_opt, get_str, parse, Db, Result};

/// Filters of a snapshot listing.
#[derive(Debug, Clone, Default)]
pub struct SnapshotQuery {
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub volume_id: Option<String>,
    /// The zone of the snapshot's volume.
    pub availability_zone: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// Substring filters (3.34).
    pub like: Vec<Like>,
    pub page: Page,
}

impl SnapshotQuery {
    /// Keys a snapshot listing may filter by substring.
    pub const LIKE_KEYS: &'static [LikeKey] = &[
        LikeKey::new("name", "name"),
        LikeKey::new("description", "description"),
        LikeKey::new("status", "status"),
        LikeKey::new("volume_id", "volume_id"),
    ];

    /// Keys a snapshot listing may be sorted by.
    pub const SORT_KEYS: &'static [SortKey] = &[
        SortKey::column("created_at", "created_at"),
        SortKey::nullable("updated_at", "updated_at"),
        SortKey::column("id", "id"),
        SortKey::nullable("name", "name"),
        SortKey::nullable("display_name", "name"),
        SortKey::column("size", "size"),
        SortKey::column("status", "status"),
        SortKey::column("volume_id", "volume_id"),
    ];
}

/// Fields to change on a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotChanges {
    pub status: Option<SnapshotStatus>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub progress: Option<String>,
    pub provider_location: Option<Option<String>>,
}

impl SnapshotChanges {
    /// Only a new status.
    pub fn status(status: SnapshotStatus) -> Self {
        SnapshotChanges {
            status: Some(status),
            ..Default::default()
        }
    }
}

const COLUMNS: &str = "s.id, s.project_id, s.user_id, s.volume_id, s.name, s.description, \
    s.size, s.status, s.progress, s.provider_location, s.created_at, s.updated_at";

fn from_row(row: &AnyRow) -> Result<Snapshot> {
    Ok(Snapshot {
        id: get_str(row, "id")?,
        project_id: get_str(row, "project_id")?,
        user_id: get_str(row, "user_id")?,
        volume_id: get_str(row, "volume_id")?,
        name: get_opt(row, "name")?,
        description: get_opt(row, "description")?,
        size: get_i64(row, "size")?,
        status: parse(row, "status")?,
        progress: get_str(row, "progress")?,
        provider_location: get_opt(row, "provider_location")?,
        metadata: Metadata::new(),
        created_at: get_str(row, "created_at")?,
        updated_at: get_opt(row, "updated_at")?,
    })
}

/// Appends the `WHERE` clause of a listing.
fn push_filters(sql: &mut Sql, q: &SnapshotQuery) {
    sql.push(" WHERE 1 = 1");
    let filters = [
        ("s.project_id", &q.project_id),
        ("s.name", &q.name),
        ("s.status", &q.status),
        ("s.volume_id", &q.volume_id),
    ];
    for (col, value) in filters {
        if let Some(value) = value {
            sql.push(&format!(" AND {col} = ")).bind(value.as_str());
        }
    }
    if let Some(zone) = &q.availability_zone {
        sql.push(" AND EXISTS (SELECT 1 FROM volumes v WHERE v.id = s.volume_id AND v.availability_zone = ")
            .bind(zone.as_str())
            .push(")");
    }
    for (k, v) in &q.metadata {
        sql.push(" AND EXISTS (SELECT 1 FROM snapshot_metadata sm WHERE sm.snapshot_id = s.id AND sm.key = ")
            .bind(k.as_str())
            .push(" AND sm.value = ")
            .bind(v.as_str())
            .push(")");
    }
    sql.push_likes("s", &q.like);
}

impl Db {
    /// Stores a new snapshot if its volume's status is one of `volume_statuses`
    /// (checked and written atomically), with a copy of the volume's image
    /// metadata; false when the volume is not.
    pub async fn insert_snapshot(
        &self,
        s: &Snapshot,
        volume_statuses: &[VolumeStatus],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Touch the volume first, so a concurrent delete of it waits for us.
        let names: Vec<&str> = volume_statuses.iter().map(|v| v.as_str()).collect();
        let mut touch = Sql::new("UPDATE volumes SET updated_at = updated_at WHERE id = ");
        touch
            .bind(&s.volume_id)
            .push(" AND ")
            .push_in("status", &names);
        let won = touch.query().execute(&mut *tx).await.map_err(db_err)?;
        if won.rows_affected() != 1 {
            return Ok(false);
        }
        let mut sql = Sql::new(
            "INSERT INTO snapshots (id, project_id, user_id, volume_id, name, description, size, \
             status, progress, provider_location, created_at, updated_at) VALUES (",
        );
        sql.bind(&s.id)
            .push(", ")
            .bind(&s.project_id)
            .push(", ")
            .bind(&s.user_id);
        sql.push(", ")
            .bind(&s.volume_id)
            .push(", ")
            .bind(s.name.clone());
        sql.push(", ")
            .bind(s.description.clone())
            .push(", ")
            .bind(s.size);
        sql.push(", ")
            .bind(s.status.as_str())
            .push(", ")
            .bind(&s.progress);
        sql.push(", ")
            .bind(s.provider_location.clone())
            .push(", ")
            .bind(&s.created_at);
        sql.push(", ").bind(s.updated_at.clone()).push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        metadata::write(&mut tx, MetaKind::Snapshot, &s.id, &s.metadata, true).await?;
        image_metadata::copy_to_snapshot(&mut tx, &s.volume_id, &s.id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// One snapshot with its metadata, or 404.
    pub async fn get_snapshot(&self, id: &str) -> Result<Snapshot> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM snapshots s WHERE s.id = "));
        sql.bind(id);
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let row = row.ok_or_else(|| Error::not_found("Snapshot", id))?;
        let mut s = from_row(&row)?;
        s.metadata = self.get_metadata(MetaKind::Snapshot, id).await?;
        Ok(s)
    }

    /// A page of snapshots matching `q`, with their metadata.
    pub async fn list_snapshots(&self, q: &SnapshotQuery) -> Result<Vec<Snapshot>> {
        check_marker(&self.pool, "snapshots", &q.page.marker).await?;
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM snapshots s"));
        push_filters(&mut sql, q);
        q.page.apply(&mut sql, "snapshots", "s");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        let mut snaps = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        let ids: Vec<&str> = snaps.iter().map(|s| s.id.as_str()).collect();
        let mut meta = load_many(self, MetaKind::Snapshot, &ids).await?;
        for s in &mut snaps {
            s.metadata = meta.remove(&s.id).unwrap_or_default();
        }
        Ok(snaps)
    }

    /// How many snapshots match `q`, ignoring its page.
    pub async fn count_snapshots(&self, q: &SnapshotQuery) -> Result<i64> {
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM snapshots s");
        push_filters(&mut sql, q);
        let row = sql.query().fetch_one(&self.pool).await.map_err(db_err)?;
        get_i64(&row, "n")
    }

    /// Applies `changes` if the snapshot's status is one of `statuses` (any when `None`).
    pub async fn update_snapshot(
        &self,
        id: &str,
        changes: &SnapshotChanges,
        statuses: Option<&[SnapshotStatus]>,
    ) -> Result<bool> {
        let mut sql = Sql::new("UPDATE snapshots SET updated_at = ");
        sql.bind(time::now());
        if let Some(s) = changes.status {
            sql.push(", status = ").bind(s.as_str());
        }
        if let Some(n) = &changes.name {
            sql.push(", name = ").bind(n.clone());
        }
        if let Some(d) = &changes.description {
            sql.push(", description = ").bind(d.clone());
        }
        if let Some(p) = &changes.progress {
            sql.push(", progress = ").bind(p.as_str());
        }
        if let Some(p) = &changes.provider_location {
            sql.push(", provider_location = ").bind(p.clone());
        }
        sql.push(" WHERE id = ").bind(id);
        if let Some(statuses) = statuses {
            let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            sql.push(" AND ").push_in("status", &names);
        }
        let done = sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a snapshot with its metadata and image metadata.
    pub async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        metadata::clear(&mut tx, MetaKind::Snapshot, id).await?;
        metadata::clear(&mut tx, MetaKind::SnapshotImage, id).await?;
        let mut sql = Sql::new("DELETE FROM snapshots WHERE id = ");
        sql.bind(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Snapshots in any of `statuses` whose volume lives on `backend` (`host@backend`).
    pub async fn snapshots_in_status(
        &self,
        statuses: &[SnapshotStatus],
        backend: &str,
    ) -> Result<Vec<Snapshot>> {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM snapshots s JOIN volumes v ON v.id = s.volume_id WHERE "
        ));
        sql.push_in("s.status", &names);
        sql.push(" AND (v.host = ")
            .bind(backend)
            .push(" OR v.host LIKE ")
            .bind(format!("{backend}#%"))
            .push(")");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Number of snapshots of a project and their total size in GiB.
    pub async fn snapshot_usage(&self, project_id: &str) -> Result<(i64, i64)> {
        let mut sql = Sql::new(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS gb FROM snapshots WHERE project_id = ",
        );
        sql.bind(project_id);
        let row = sql.query().fetch_one(&self.pool).await.map_err(db_err)?;
        Ok((get_i64(&row, "n")?, get_i64(&row, "gb")?))
    }
}
