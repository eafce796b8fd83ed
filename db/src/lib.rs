//! The repository: one API over SQLite (embedded default) and PostgreSQL.
//!
//! Every status change is a conditional update (`… WHERE id = $1 AND status IN
//! (…)`) that reports whether it won, so concurrent requests never corrupt a
//! row: the loser gets a clear error instead.

mod attachments;
mod image_cache;
mod image_metadata;
mod messages;
pub mod metadata;
mod query;
mod services;
mod snapshots;
mod types;
mod usage;
mod volumes;

pub use attachments::{AttachGate, AttachmentChanges, AttachmentQuery};
pub use image_cache::CacheEntry;
pub use messages::MessageQuery;
pub use metadata::MetaKind;
pub use query::{Like, LikeKey, Page, SortDir, SortKey};
pub use snapshots::{SnapshotChanges, SnapshotQuery};
pub use types::VolumeTypeChanges;
pub use usage::TypeUsage;
pub use volumes::{VolumeChanges, VolumeGuard, VolumeQuery};

use scoria_core::Error;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// Result alias for repository calls.
pub type Result<T> = std::result::Result<T, Error>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
}

/// The SQL dialect behind the pool, for the few functions whose names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// An expression building a JSON object from `'key', value` pairs, as text.
    pub(crate) fn json_object(self, pairs: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_object({pairs})"),
            Dialect::Postgres => format!("json_build_object({pairs})::text"),
        }
    }

    /// A scalar subquery aggregating `key`/`value` columns into a JSON object
    /// (`{}` when there are none), usable as a value inside [`Dialect::json_object`].
    pub(crate) fn json_map(self, from_where: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!(
                    "json(COALESCE((SELECT json_group_object(key, value) {from_where}), '{{}}'))"
                )
            }
            Dialect::Postgres => {
                format!("COALESCE((SELECT json_object_agg(key, value) {from_where}), '{{}}'::json)")
            }
        }
    }

    /// An empty JSON array, of the type [`Dialect::json_rows`] gives.
    pub(crate) fn json_empty_array(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json('[]')",
            Dialect::Postgres => "'[]'::json",
        }
    }

    /// A scalar subquery making a JSON array of one object (from `'key', value`
    /// pairs) per row (`[]` when there are none), usable inside [`Dialect::json_object`].
    pub(crate) fn json_rows(self, pairs: &str, from_where: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "json(COALESCE((SELECT json_group_array(json_object({pairs})) {from_where}), '[]'))"
            ),
            Dialect::Postgres => format!(
                "COALESCE((SELECT json_agg(json_build_object({pairs})) {from_where}), '[]'::json)"
            ),
        }
    }
}

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://…`), creating a SQLite file if needed.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| Error::Internal(format!("cannot connect to database: {e}")))?;
        let dialect = if sqlite {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        Ok(Db { pool, dialect })
    }

    /// Applies the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::Internal(format!("database migration failed: {e}")))
    }
}

/// Maps a database failure to an internal error.
fn db_err(e: sqlx::Error) -> Error {
    Error::Internal(format!("database error: {e}"))
}

fn get_str(row: &AnyRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col).map_err(db_err)
}

fn get_opt(row: &AnyRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col).map_err(db_err)
}

fn get_i64(row: &AnyRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col).map_err(db_err)
}

fn get_bool(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(get_i64(row, col)? != 0)
}

fn parse<T: std::str::FromStr<Err = String>>(row: &AnyRow, col: &str) -> Result<T> {
    get_str(row, col)?.parse().map_err(Error::Internal)
}

impl Db {
    /// Runs one statement without parameters (administrative use: tests, tooling).
    pub async fn execute_raw(&self, sql: &str) -> Result<()> {
        self.pool.execute(sql).await.map_err(db_err)?;
        Ok(())
    }
}
