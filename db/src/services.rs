//! Services: registration, heartbeats and the latest stats of each backend.

use scoria_core::model::Service;
use scoria_core::{time, Error};
use sqlx::any::AnyRow;

use crate::query::Sql;
use crate::{db_err, get_bool, get_opt, get_str, Db, Result};

fn from_row(row: &AnyRow) -> Result<Service> {
    let stats = get_opt(row, "stats")?;
    Ok(Service {
        id: get_str(row, "id")?,
        binary: get_str(row, "binary_name")?,
        host: get_str(row, "host")?,
        availability_zone: get_str(row, "availability_zone")?,
        disabled: get_bool(row, "disabled")?,
        disabled_reason: get_opt(row, "disabled_reason")?,
        updated_at: get_str(row, "updated_at")?
            .parse()
            .map_err(Error::Internal)?,
        created_at: get_str(row, "created_at")?
            .parse()
            .map_err(Error::Internal)?,
        stats: stats.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl Db {
    /// Records a heartbeat of (`binary`, `host`), registering the service on
    /// first sight; `stats` replaces the stored report when given.
    pub async fn service_heartbeat(
        &self,
        binary: &str,
        host: &str,
        zone: &str,
        stats: Option<&serde_json::Value>,
    ) -> Result<()> {
        let now = time::now();
        let stats = stats.map(|s| s.to_string());
        let mut sql = Sql::new(
            "INSERT INTO services (id, binary_name, host, availability_zone, stats, created_at, updated_at) VALUES (",
        );
        sql.bind(uuid::Uuid::new_v4().to_string())
            .push(", ")
            .bind(binary);
        sql.push(", ")
            .bind(host)
            .push(", ")
            .bind(zone)
            .push(", ")
            .bind(stats.clone());
        sql.push(", ")
            .bind(now.as_str())
            .push(", ")
            .bind(now.as_str());
        sql.push(") ON CONFLICT (binary_name, host) DO UPDATE SET updated_at = excluded.updated_at, availability_zone = excluded.availability_zone");
        if stats.is_some() {
            sql.push(", stats = excluded.stats");
        }
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// Every service, optionally filtered by host and binary.
    pub async fn list_services(
        &self,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Service>> {
        let mut sql = Sql::new("SELECT * FROM services WHERE 1 = 1");
        if let Some(h) = host {
            sql.push(" AND host = ").bind(h);
        }
        if let Some(b) = binary {
            sql.push(" AND binary_name = ").bind(b);
        }
        sql.push(" ORDER BY binary_name, host");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Enables or disables a service; 404 when it is unknown.
    pub async fn set_service_disabled(
        &self,
        binary: &str,
        host: &str,
        disabled: bool,
        reason: Option<String>,
    ) -> Result<Service> {
        let mut sql = Sql::new("UPDATE services SET disabled = ");
        sql.bind(disabled).push(", disabled_reason = ").bind(reason);
        sql.push(" WHERE binary_name = ")
            .bind(binary)
            .push(" AND host = ")
            .bind(host);
        let done = sql.query().execute(&self.pool).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "Service {binary} on host {host} could not be found."
            )));
        }
        let mut found = self.list_services(Some(host), Some(binary)).await?;
        found.pop().ok_or_else(|| {
            Error::NotFound(format!(
                "Service {binary} on host {host} could not be found."
            ))
        })
    }
}
