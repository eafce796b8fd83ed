//! Attachments of volumes, and the volume status they imply.
//!
//! A volume's `status` and `attach_status` while it is attached follow from
//! its attachments by the rule of `scoria_core::transitions::attachment::IMPLIES`
//! (any `attached` one makes it `in-use`, else any `attaching`, `detaching` or
//! `reserved` one gives that status, else it is `available`). Every change of
//! an attachment's status recomputes them in the same transaction, so the two
//! never disagree.

use scoria_core::model::{AccessMode, Attachment};
use std::sync::LazyLock;

use scoria_core::status::{AttachStatus, VolumeStatus};
use scoria_core::transitions::attachment;
use scoria_core::{time, Error};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::query::{check_marker, Page, SortKey, Sql};
use crate::{db_err, get_opt, get_str, parse, Db, Result};

/// Filters of an attachment listing; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct AttachmentQuery {
    pub project_id: Option<String>,
    pub volume_id: Option<String>,
    pub instance_id: Option<String>,
    pub attach_status: Option<String>,
    pub page: Page,
}

impl AttachmentQuery {
    /// Keys an attachment listing may be sorted by.
    pub const SORT_KEYS: &'static [SortKey] = &[
        SortKey::column("created_at", "created_at"),
        SortKey::nullable("updated_at", "updated_at"),
        SortKey::column("id", "id"),
        SortKey::column("volume_id", "volume_id"),
        SortKey::column("status", "attach_status"),
    ];
}

/// Fields to change on an attachment; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AttachmentChanges {
    pub attach_status: Option<AttachStatus>,
    pub instance_uuid: Option<Option<String>>,
    pub attached_host: Option<Option<String>>,
    pub mountpoint: Option<Option<String>>,
    pub attach_mode: Option<Option<AccessMode>>,
    pub connector: Option<Option<scoria_core::model::Connector>>,
    pub connection_info: Option<Option<scoria_core::model::ConnectionInfo>>,
    pub auth: Option<Option<scoria_core::model::Chap>>,
    pub attached_at: Option<Option<String>>,
    pub detached_at: Option<Option<String>>,
}

/// The volume states in which a new attachment may be made.
#[derive(Debug, Clone, Copy)]
pub struct AttachGate<'a> {
    /// The volume's status must be one of these…
    pub statuses: &'a [VolumeStatus],
    /// …or one of these when the attachment's server already has an attachment
    /// to the volume (a server moving between hosts).
    pub same_instance_statuses: &'a [VolumeStatus],
}

const COLUMNS: &str = "id, volume_id, project_id, instance_uuid, attached_host, mountpoint, \
    attach_status, attach_mode, connector, connection_info, auth, attached_at, detached_at, \
    created_at, updated_at";

fn to_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn from_json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    get_opt(row, col)?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Error::Internal(format!("malformed attachment {col}: {e}")))
        })
        .transpose()
}

fn from_row(row: &AnyRow) -> Result<Attachment> {
    Ok(Attachment {
        id: get_str(row, "id")?,
        volume_id: get_str(row, "volume_id")?,
        project_id: get_str(row, "project_id")?,
        instance_uuid: get_opt(row, "instance_uuid")?,
        attached_host: get_opt(row, "attached_host")?,
        mountpoint: get_opt(row, "mountpoint")?,
        attach_status: parse(row, "attach_status")?,
        attach_mode: get_opt(row, "attach_mode")?
            .as_deref()
            .and_then(AccessMode::parse),
        connector: from_json(row, "connector")?,
        connection_info: from_json(row, "connection_info")?,
        auth: from_json(row, "auth")?,
        attached_at: get_opt(row, "attached_at")?,
        detached_at: get_opt(row, "detached_at")?,
        created_at: get_str(row, "created_at")?,
        updated_at: get_opt(row, "updated_at")?,
    })
}

/// `UPDATE volumes SET status = CASE …, attach_status = CASE …, updated_at = `:
/// the rule of [`attachment::IMPLIES`] in SQL, generated once.
static RECOMPUTE: LazyLock<String> = LazyLock::new(|| {
    let any = |status: AttachStatus| {
        format!(
            "EXISTS (SELECT 1 FROM volume_attachments a WHERE a.volume_id = volumes.id \
             AND a.attach_status = '{status}')"
        )
    };
    let case = |then: &dyn Fn(AttachStatus, VolumeStatus) -> String, otherwise: String| {
        let arms: Vec<String> = attachment::IMPLIES
            .iter()
            .map(|&(att, vol)| format!("WHEN {} THEN '{}'", any(att), then(att, vol)))
            .collect();
        format!("CASE {} ELSE '{otherwise}' END", arms.join(" "))
    };
    let (volume, attach) = attachment::NONE_IMPLIES;
    format!(
        "UPDATE volumes SET status = {}, attach_status = {}, updated_at = ",
        case(&|_, vol| vol.to_string(), volume.to_string()),
        case(&|att, _| att.to_string(), attach.to_string()),
    )
});

/// The volume statuses attachments decide ([`attachment::decided`]).
static DECIDED: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    attachment::decided()
        .into_iter()
        .map(VolumeStatus::as_str)
        .collect()
});

/// Sets the volume's `status` and `attach_status` from its attachments, when
/// its status is one that attachments decide.
async fn recompute(tx: &mut Transaction<'static, Any>, volume_id: &str) -> Result<()> {
    let mut sql = Sql::new(&RECOMPUTE);
    sql.bind(time::now())
        .push(" WHERE id = ")
        .bind(volume_id)
        .push(" AND ")
        .push_in("status", &DECIDED);
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

impl Db {
    /// Stores a new attachment. With a `gate`, the volume must meet it (checked
    /// and written atomically, so of two racing attachments to a volume that
    /// allows one, exactly one wins) and its status is recomputed; false when
    /// the gate refused. Without a gate, nothing else changes.
    pub async fn create_attachment(
        &self,
        a: &Attachment,
        gate: Option<AttachGate<'_>>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if let Some(gate) = gate {
            if !pass_gate(&mut tx, a, gate).await? {
                return Ok(false);
            }
        }
        let mut sql = Sql::new(&format!(
            "INSERT INTO volume_attachments ({COLUMNS}) VALUES ("
        ));
        sql.bind(&a.id)
            .push(", ")
            .bind(&a.volume_id)
            .push(", ")
            .bind(&a.project_id);
        sql.push(", ")
            .bind(a.instance_uuid.clone())
            .push(", ")
            .bind(a.attached_host.clone())
            .push(", ")
            .bind(a.mountpoint.clone());
        sql.push(", ")
            .bind(a.attach_status.as_str())
            .push(", ")
            .bind(a.attach_mode.map(|m| m.as_str().to_string()));
        sql.push(", ")
            .bind(to_json(&a.connector))
            .push(", ")
            .bind(to_json(&a.connection_info))
            .push(", ")
            .bind(to_json(&a.auth));
        sql.push(", ")
            .bind(a.attached_at.clone())
            .push(", ")
            .bind(a.detached_at.clone());
        sql.push(", ")
            .bind(&a.created_at)
            .push(", ")
            .bind(a.updated_at.clone())
            .push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if gate.is_some() {
            recompute(&mut tx, &a.volume_id).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// One attachment, or 404.
    pub async fn get_attachment(&self, id: &str) -> Result<Attachment> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM volume_attachments WHERE id = "
        ));
        sql.bind(id);
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        from_row(
            &row.ok_or_else(|| {
                Error::NotFound(format!("VolumeAttachment {id} could not be found."))
            })?,
        )
    }

    /// A page of attachments matching `q`.
    pub async fn list_attachments(&self, q: &AttachmentQuery) -> Result<Vec<Attachment>> {
        check_marker(&self.pool, "volume_attachments", &q.page.marker).await?;
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM volume_attachments a WHERE 1 = 1"
        ));
        let filters = [
            ("a.project_id", &q.project_id),
            ("a.volume_id", &q.volume_id),
            ("a.instance_uuid", &q.instance_id),
            ("a.attach_status", &q.attach_status),
        ];
        for (col, value) in filters {
            if let Some(value) = value {
                sql.push(&format!(" AND {col} = ")).bind(value.as_str());
            }
        }
        q.page.apply(&mut sql, "volume_attachments", "a");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Every attachment of a volume, oldest first.
    pub async fn attachments_of_volume(&self, volume_id: &str) -> Result<Vec<Attachment>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM volume_attachments WHERE volume_id = "
        ));
        sql.bind(volume_id).push(" ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Attachments holding an export on `backend` (`host@backend`): those with
    /// connection info, for the volume service to restore at start.
    pub async fn exported_attachments(&self, backend: &str) -> Result<Vec<Attachment>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM volume_attachments WHERE connection_info IS NOT NULL \
             AND volume_id IN (SELECT id FROM volumes WHERE host = "
        ));
        sql.bind(backend)
            .push(" OR host LIKE ")
            .bind(format!("{backend}#%"))
            .push(") ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Applies `changes` if the attachment's status is one of `from` (any when
    /// `None`); false when it is not. A status change recomputes the volume's.
    pub async fn update_attachment(
        &self,
        id: &str,
        changes: &AttachmentChanges,
        from: Option<&[AttachStatus]>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut sql = Sql::new("UPDATE volume_attachments SET updated_at = ");
        sql.bind(time::now());
        push_changes(&mut sql, changes);
        sql.push(" WHERE id = ").bind(id);
        if let Some(from) = from {
            let names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            sql.push(" AND ").push_in("attach_status", &names);
        }
        let done = sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if changes.attach_status.is_some() {
            let volume_id = volume_of(&mut tx, id).await?;
            recompute(&mut tx, &volume_id).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// Removes an attachment if its status is one of `from` (any when `None`)
    /// and recomputes its volume's status (unless it was `detached`, which
    /// never counts); false when it was not there.
    pub async fn delete_attachment(&self, id: &str, from: Option<&[AttachStatus]>) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Write first: SQLite cannot upgrade a transaction that has read
        // while another writer commits (it fails at once, without waiting).
        let mut sql = Sql::new("DELETE FROM volume_attachments WHERE id = ");
        sql.bind(id);
        if let Some(from) = from {
            let names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
            sql.push(" AND ").push_in("attach_status", &names);
        }
        sql.push(" RETURNING volume_id, attach_status");
        let Some(row) = sql.query().fetch_optional(&mut *tx).await.map_err(db_err)? else {
            return Ok(false);
        };
        if get_str(&row, "attach_status")? != AttachStatus::Detached.as_str() {
            recompute(&mut tx, &get_str(&row, "volume_id")?).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// Sets the volume's status from its attachments (see the module docs),
    /// when its status is one attachments decide.
    pub async fn recompute_attach_status(&self, volume_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        recompute(&mut tx, volume_id).await?;
        tx.commit().await.map_err(db_err)
    }
}

/// Checks and locks the volume row for a new attachment.
async fn pass_gate(
    tx: &mut Transaction<'static, Any>,
    a: &Attachment,
    gate: AttachGate<'_>,
) -> Result<bool> {
    let names = |s: &[VolumeStatus]| s.iter().map(|s| s.as_str()).collect::<Vec<_>>();
    let mut sql = Sql::new("UPDATE volumes SET updated_at = updated_at WHERE id = ");
    sql.bind(&a.volume_id).push(" AND (");
    sql.push_in("status", &names(gate.statuses));
    if let (Some(instance), false) = (&a.instance_uuid, gate.same_instance_statuses.is_empty()) {
        sql.push(" OR (")
            .push_in("status", &names(gate.same_instance_statuses))
            .push(
                " AND EXISTS (SELECT 1 FROM volume_attachments o \
                 WHERE o.volume_id = volumes.id AND o.instance_uuid = ",
            )
            .bind(instance.as_str())
            .push("))");
    }
    sql.push(")");
    let done = sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// The volume of an attachment.
async fn volume_of(tx: &mut Transaction<'static, Any>, attachment_id: &str) -> Result<String> {
    let mut sql = Sql::new("SELECT volume_id FROM volume_attachments WHERE id = ");
    sql.bind(attachment_id);
    let row = sql
        .query()
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "VolumeAttachment {attachment_id} could not be found."
            ))
        })?;
    get_str(&row, "volume_id")
}

fn push_changes(sql: &mut Sql, c: &AttachmentChanges) {
    if let Some(s) = c.attach_status {
        sql.push(", attach_status = ").bind(s.as_str());
    }
    let texts = [
        ("instance_uuid", &c.instance_uuid),
        ("attached_host", &c.attached_host),
        ("mountpoint", &c.mountpoint),
        ("attached_at", &c.attached_at),
        ("detached_at", &c.detached_at),
    ];
    for (col, value) in texts {
        if let Some(v) = value {
            sql.push(&format!(", {col} = ")).bind(v.clone());
        }
    }
    if let Some(m) = c.attach_mode {
        sql.push(", attach_mode = ")
            .bind(m.map(|m| m.as_str().to_string()));
    }
    if let Some(v) = &c.connector {
        sql.push(", connector = ").bind(to_json(v));
    }
    if let Some(v) = &c.connection_info {
        sql.push(", connection_info = ").bind(to_json(v));
    }
    if let Some(v) = &c.auth {
        sql.push(", auth = ").bind(to_json(v));
    }
}
