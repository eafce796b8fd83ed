//! Volume types and their extra specs.

use scoria_core::model::{Metadata, VolumeType, DEFAULT_TYPE_NAME};
use scoria_core::{time, Error};
use sqlx::any::AnyRow;

use crate::metadata::{self, load_many, MetaKind};
use crate::query::Sql;
use crate::{db_err, get_bool, get_opt, get_str, Db, Result};

/// Fields to change on a volume type.
#[derive(Debug, Clone, Default)]
pub struct VolumeTypeChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_public: Option<bool>,
}

const COLUMNS: &str = "t.id, t.name, t.description, t.is_public, t.created_at, t.updated_at";

fn from_row(row: &AnyRow) -> Result<VolumeType> {
    Ok(VolumeType {
        id: get_str(row, "id")?,
        name: get_str(row, "name")?,
        description: get_opt(row, "description")?,
        is_public: get_bool(row, "is_public")?,
        extra_specs: Metadata::new(),
        created_at: get_str(row, "created_at")?,
        updated_at: get_opt(row, "updated_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Db {
    /// Creates the `__DEFAULT__` type unless it exists; safe to run from many processes.
    pub async fn ensure_default_type(&self) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (",
        );
        sql.bind(uuid::Uuid::new_v4().to_string())
            .push(", ")
            .bind(DEFAULT_TYPE_NAME)
            .push(", ")
            .bind("Default Volume Type")
            .push(", 1, ")
            .bind(time::now())
            .push(") ON CONFLICT (name) DO NOTHING");
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// Stores a new type with its extra specs; 409 when the name is taken.
    pub async fn insert_volume_type(&self, t: &VolumeType) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut sql = Sql::new(
            "INSERT INTO volume_types (id, name, description, is_public, created_at) VALUES (",
        );
        sql.bind(&t.id)
            .push(", ")
            .bind(&t.name)
            .push(", ")
            .bind(t.description.clone());
        sql.push(", ")
            .bind(t.is_public)
            .push(", ")
            .bind(&t.created_at)
            .push(")");
        if let Err(e) = sql.query().execute(&mut *tx).await {
            return Err(if is_unique_violation(&e) {
                Error::Conflict(format!("Volume Type {} already exists.", t.name))
            } else {
                db_err(e)
            });
        }
        metadata::write(&mut tx, MetaKind::ExtraSpecs, &t.id, &t.extra_specs, true).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn find_type(&self, column: &str, value: &str) -> Result<Option<VolumeType>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM volume_types t WHERE t.{column} = "
        ));
        sql.bind(value);
        let Some(row) = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut t = from_row(&row)?;
        t.extra_specs = self.get_metadata(MetaKind::ExtraSpecs, &t.id).await?;
        Ok(Some(t))
    }

    /// A type by id, or 404.
    pub async fn get_volume_type(&self, id: &str) -> Result<VolumeType> {
        self.find_type("id", id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Volume type {id} could not be found.")))
    }

    /// A type by id or, failing that, by name; 404 when neither matches.
    pub async fn find_volume_type(&self, id_or_name: &str) -> Result<VolumeType> {
        if let Some(t) = self.find_type("id", id_or_name).await? {
            return Ok(t);
        }
        self.find_type("name", id_or_name).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "Volume type with name or id {id_or_name} could not be found."
            ))
        })
    }

    /// Every type (public only when `public_only`), sorted by name, with extra specs.
    pub async fn list_volume_types(&self, public_only: bool) -> Result<Vec<VolumeType>> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM volume_types t"));
        if public_only {
            sql.push(" WHERE t.is_public = 1");
        }
        sql.push(" ORDER BY t.name");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        let mut types = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
        let mut specs = load_many(self, MetaKind::ExtraSpecs, &ids).await?;
        for t in &mut types {
            t.extra_specs = specs.remove(&t.id).unwrap_or_default();
        }
        Ok(types)
    }

    /// Changes a type's name, description or visibility; 409 on a duplicate name.
    pub async fn update_volume_type(&self, id: &str, c: &VolumeTypeChanges) -> Result<()> {
        let mut sql = Sql::new("UPDATE volume_types SET updated_at = ");
        sql.bind(time::now());
        if let Some(n) = &c.name {
            sql.push(", name = ").bind(n.as_str());
        }
        if let Some(d) = &c.description {
            sql.push(", description = ").bind(d.clone());
        }
        if let Some(p) = c.is_public {
            sql.push(", is_public = ").bind(p);
        }
        sql.push(" WHERE id = ").bind(id);
        match sql.query().execute(&self.pool).await {
            Ok(done) if done.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(Error::NotFound(format!(
                "Volume type {id} could not be found."
            ))),
            Err(e) if is_unique_violation(&e) => Err(Error::Conflict(format!(
                "Volume Type {} already exists.",
                c.name.as_deref().unwrap_or(id)
            ))),
            Err(e) => Err(db_err(e)),
        }
    }

    /// Deletes a type unless a volume uses it (checked in the same statement).
    /// Returns false when the type is in use.
    pub async fn delete_volume_type(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut sql = Sql::new("DELETE FROM volume_types WHERE id = ");
        sql.bind(id)
            .push(" AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.volume_type_id = ")
            .bind(id)
            .push(")");
        let done = sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        metadata::clear(&mut tx, MetaKind::ExtraSpecs, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}
