//! Volume image metadata (Cinder's `volume_glance_metadata`): what a volume
//! keeps of the Glance image it was made from, shown as
//! `volume_image_metadata`, and the copy a snapshot keeps of its volume's to
//! pass on to volumes made from it.
//!
//! Who writes it:
//! - the volume manager, when a volume has been filled from an image:
//!   [`Db::replace_volume_image_metadata`] (and `bootable` through
//!   `VolumeChanges`);
//! - the api's `os-set_image_metadata` / `os-unset_image_metadata`:
//!   [`Db::set_volume_image_metadata`], [`Db::unset_volume_image_metadata`];
//! - [`Db::insert_snapshot`] copies the volume's to the snapshot, and
//!   [`Db::insert_volume`] copies the snapshot's or the source volume's to a
//!   volume made from one, in their transactions;
//! - [`Db::delete_volume`] and [`Db::delete_snapshot`] remove it.
//!
//! A volume read from the database carries it in `Volume::image_metadata`.

use scoria_core::model::{Metadata, Volume};
use sqlx::AnyConnection;

use crate::metadata::MetaKind;
use crate::query::Sql;
use crate::{db_err, Db, Result};

impl Db {
    /// A volume's image metadata; empty when it has none (or no such volume).
    pub async fn volume_image_metadata(&self, volume_id: &str) -> Result<Metadata> {
        self.get_metadata(MetaKind::VolumeImage, volume_id).await
    }

    /// Replaces all of a volume's image metadata with `meta`, in one
    /// transaction (the volume manager, once a volume holds an image).
    pub async fn replace_volume_image_metadata(
        &self,
        volume_id: &str,
        meta: &Metadata,
    ) -> Result<()> {
        self.set_metadata(MetaKind::VolumeImage, volume_id, meta, true)
            .await
            .map(drop)
    }

    /// Merges `meta` into a volume's image metadata (new keys are added,
    /// existing ones take the new values) and returns all of it.
    pub async fn set_volume_image_metadata(
        &self,
        volume_id: &str,
        meta: &Metadata,
    ) -> Result<Metadata> {
        self.set_metadata(MetaKind::VolumeImage, volume_id, meta, false)
            .await
    }

    /// Removes one key of a volume's image metadata; false when it had no
    /// such key.
    pub async fn unset_volume_image_metadata(&self, volume_id: &str, key: &str) -> Result<bool> {
        self.delete_metadata_key(MetaKind::VolumeImage, volume_id, key)
            .await
    }

    /// The image metadata a snapshot keeps (a copy of its volume's when the
    /// snapshot was taken).
    pub async fn snapshot_image_metadata(&self, snapshot_id: &str) -> Result<Metadata> {
        self.get_metadata(MetaKind::SnapshotImage, snapshot_id)
            .await
    }
}

/// Copies the image metadata of volume `volume_id` to snapshot `snapshot_id`.
pub(crate) async fn copy_to_snapshot(
    conn: &mut AnyConnection,
    volume_id: &str,
    snapshot_id: &str,
) -> Result<()> {
    let mut sql =
        Sql::new("INSERT INTO snapshot_glance_metadata (snapshot_id, key, value) SELECT ");
    sql.bind(snapshot_id)
        .push(", key, value FROM volume_glance_metadata WHERE volume_id = ")
        .bind(volume_id);
    sql.query().execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}

/// Gives the new volume `v` the image metadata of what it is made from: its
/// snapshot's, or its source volume's. Nothing for any other volume.
pub(crate) async fn copy_to_new_volume(conn: &mut AnyConnection, v: &Volume) -> Result<()> {
    let (table, owner, source) = match (&v.snapshot_id, &v.source_volid) {
        (Some(s), _) => ("snapshot_glance_metadata", "snapshot_id", s),
        (None, Some(src)) => ("volume_glance_metadata", "volume_id", src),
        (None, None) => return Ok(()),
    };
    let mut sql = Sql::new("INSERT INTO volume_glance_metadata (volume_id, key, value) SELECT ");
    sql.bind(&v.id)
        .push(&format!(", key, value FROM {table} WHERE {owner} = "))
        .bind(source.as_str());
    sql.query().execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}
