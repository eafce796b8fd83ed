//! Entries of the image-volume cache: which volume of a backend holds which
//! Glance image (as of the image's `updated_at`).

use scoria_core::time;
use sqlx::any::AnyRow;

use crate::query::Sql;
use crate::{db_err, get_i64, get_opt, get_str, Db, Result};

/// One cached image on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub id: String,
    /// The backend, `host@backend`.
    pub host: String,
    pub image_id: String,
    /// The image's `updated_at` when it was cached: a later one means the
    /// image changed and the entry is stale.
    pub image_updated_at: Option<String>,
    pub volume_id: String,
    /// GiB.
    pub size: i64,
    pub last_used: String,
}

fn from_row(row: &AnyRow) -> Result<CacheEntry> {
    Ok(CacheEntry {
        id: get_str(row, "id")?,
        host: get_str(row, "host")?,
        image_id: get_str(row, "image_id")?,
        image_updated_at: get_opt(row, "image_updated_at")?,
        volume_id: get_str(row, "volume_id")?,
        size: get_i64(row, "size")?,
        last_used: get_str(row, "last_used")?,
    })
}

const COLUMNS: &str = "SELECT id, host, image_id, image_updated_at, volume_id, size, last_used \
                       FROM image_volume_cache_entries WHERE host = ";

impl Db {
    /// The entry of `image_id` on backend `host`, if any.
    pub async fn cache_entry(&self, host: &str, image_id: &str) -> Result<Option<CacheEntry>> {
        let mut sql = Sql::new(COLUMNS);
        sql.bind(host).push(" AND image_id = ").bind(image_id);
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every entry of backend `host`, least recently used first.
    pub async fn cache_entries(&self, host: &str) -> Result<Vec<CacheEntry>> {
        let mut sql = Sql::new(COLUMNS);
        sql.bind(host).push(" ORDER BY last_used, id");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Records a new entry.
    pub async fn insert_cache_entry(&self, e: &CacheEntry) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO image_volume_cache_entries \
             (id, host, image_id, image_updated_at, volume_id, size, last_used) VALUES (",
        );
        sql.bind(&e.id)
            .push(", ")
            .bind(&e.host)
            .push(", ")
            .bind(&e.image_id);
        sql.push(", ")
            .bind(e.image_updated_at.clone())
            .push(", ")
            .bind(&e.volume_id);
        sql.push(", ")
            .bind(e.size)
            .push(", ")
            .bind(&e.last_used)
            .push(")");
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// Marks an entry used now.
    pub async fn touch_cache_entry(&self, id: &str) -> Result<()> {
        let mut sql = Sql::new("UPDATE image_volume_cache_entries SET last_used = ");
        sql.bind(time::now()).push(" WHERE id = ").bind(id);
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// Removes an entry (not its volume).
    pub async fn delete_cache_entry(&self, id: &str) -> Result<()> {
        let mut sql = Sql::new("DELETE FROM image_volume_cache_entries WHERE id = ");
        sql.bind(id);
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }
}
