//! Key/value tables owned by another row: volume and snapshot metadata,
//! their image metadata, and volume type extra specs.

use std::collections::HashMap;

use scoria_core::model::Metadata;
use sqlx::AnyConnection;

use crate::query::Sql;
use crate::{db_err, get_str, Db, Result};

/// Which key/value table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    Volume,
    Snapshot,
    ExtraSpecs,
    /// A volume's image metadata (`volume_image_metadata`).
    VolumeImage,
    /// The image metadata a snapshot passes on to volumes made from it.
    SnapshotImage,
}

impl MetaKind {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            MetaKind::Volume => ("volume_metadata", "volume_id"),
            MetaKind::Snapshot => ("snapshot_metadata", "snapshot_id"),
            MetaKind::ExtraSpecs => ("volume_type_extra_specs", "type_id"),
            MetaKind::VolumeImage => ("volume_glance_metadata", "volume_id"),
            MetaKind::SnapshotImage => ("snapshot_glance_metadata", "snapshot_id"),
        }
    }
}

/// Loads the key/values of many owners at once.
pub(crate) async fn load_many(
    db: &Db,
    kind: MetaKind,
    ids: &[&str],
) -> Result<HashMap<String, Metadata>> {
    let mut out: HashMap<String, Metadata> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let (table, owner) = kind.table();
    let mut sql = Sql::new(&format!(
        "SELECT {owner} AS owner, key, value FROM {table} WHERE "
    ));
    sql.push_in(owner, ids);
    for row in sql.query().fetch_all(&db.pool).await.map_err(db_err)? {
        out.entry(get_str(&row, "owner")?)
            .or_default()
            .insert(get_str(&row, "key")?, get_str(&row, "value")?);
    }
    Ok(out)
}

/// Writes `meta` for `id`, replacing every existing key when `replace` is set.
pub(crate) async fn write(
    conn: &mut AnyConnection,
    kind: MetaKind,
    id: &str,
    meta: &Metadata,
    replace: bool,
) -> Result<()> {
    let (table, owner) = kind.table();
    if replace {
        let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE {owner} = "));
        sql.bind(id);
        sql.query().execute(&mut *conn).await.map_err(db_err)?;
    }
    for (k, v) in meta {
        let mut sql = Sql::new(&format!(
            "INSERT INTO {table} ({owner}, key, value) VALUES ("
        ));
        sql.bind(id).push(", ").bind(k).push(", ").bind(v);
        sql.push(&format!(
            ") ON CONFLICT ({owner}, key) DO UPDATE SET value = excluded.value"
        ));
        sql.query().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// Removes every key of `id`.
pub(crate) async fn clear(conn: &mut AnyConnection, kind: MetaKind, id: &str) -> Result<()> {
    write(conn, kind, id, &Metadata::new(), true).await
}

impl Db {
    /// The key/values of one owner.
    pub async fn get_metadata(&self, kind: MetaKind, id: &str) -> Result<Metadata> {
        Ok(load_many(self, kind, &[id])
            .await?
            .remove(id)
            .unwrap_or_default())
    }

    /// Merges (or with `replace`, sets) key/values and returns the full result.
    pub async fn set_metadata(
        &self,
        kind: MetaKind,
        id: &str,
        meta: &Metadata,
        replace: bool,
    ) -> Result<Metadata> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        write(&mut tx, kind, id, meta, replace).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_metadata(kind, id).await
    }

    /// Deletes one key; false when it did not exist.
    pub async fn delete_metadata_key(&self, kind: MetaKind, id: &str, key: &str) -> Result<bool> {
        let (table, owner) = kind.table();
        let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE {owner} = "));
        sql.bind(id).push(" AND key = ").bind(key);
        let done = sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
