//! What a project uses, per volume type, for quota reports.

use std::collections::HashMap;

use crate::query::Sql;
use crate::{db_err, get_i64, get_str, Db, Result};

/// What one project uses of one volume type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeUsage {
    pub volumes: i64,
    pub snapshots: i64,
    /// Sizes of the volumes and of the snapshots, in GiB.
    pub gigabytes: i64,
}

impl Db {
    /// A project's usage per volume type id; types it does not use are absent.
    pub async fn usage_by_type(&self, project_id: &str) -> Result<HashMap<String, TypeUsage>> {
        let mut out: HashMap<String, TypeUsage> = HashMap::new();
        let volumes = "SELECT v.volume_type_id AS type_id, COUNT(*) AS n, \
             CAST(COALESCE(SUM(v.size), 0) AS BIGINT) AS gb FROM volumes v \
             WHERE v.volume_type_id IS NOT NULL AND v.project_id = ";
        for (type_id, n, gb) in self.grouped(volumes, project_id).await? {
            let u = out.entry(type_id).or_default();
            u.volumes += n;
            u.gigabytes += gb;
        }
        let snapshots = "SELECT v.volume_type_id AS type_id, COUNT(*) AS n, \
             CAST(COALESCE(SUM(s.size), 0) AS BIGINT) AS gb FROM snapshots s \
             JOIN volumes v ON v.id = s.volume_id \
             WHERE v.volume_type_id IS NOT NULL AND s.project_id = ";
        for (type_id, n, gb) in self.grouped(snapshots, project_id).await? {
            let u = out.entry(type_id).or_default();
            u.snapshots += n;
            u.gigabytes += gb;
        }
        Ok(out)
    }

    /// Runs `select` (ending in a project comparison) grouped by type id.
    async fn grouped(&self, select: &str, project_id: &str) -> Result<Vec<(String, i64, i64)>> {
        let mut sql = Sql::new(select);
        sql.bind(project_id).push(" GROUP BY v.volume_type_id");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((get_str(r, "type_id")?, get_i64(r, "n")?, get_i64(r, "gb")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(db: &Db, text: &str) {
        sqlx::query(text).execute(&db.pool).await.unwrap();
    }

    #[tokio::test]
    async fn usage_is_grouped_by_type_and_project() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let volume = |id: &str, project: &str, size: i64, type_id: &str| {
            format!(
                "INSERT INTO volumes (id, project_id, user_id, size, status, attach_status, \
                 availability_zone, volume_type_id, created_at) VALUES ('{id}', '{project}', 'u', \
                 {size}, 'available', 'detached', 'nova', {type_id}, 't')"
            )
        };
        run(&db, &volume("v1", "p", 2, "'gold'")).await;
        run(&db, &volume("v2", "p", 3, "'gold'")).await;
        run(&db, &volume("v3", "p", 7, "NULL")).await;
        run(&db, &volume("v4", "other", 9, "'gold'")).await;
        run(
            &db,
            "INSERT INTO snapshots (id, project_id, user_id, volume_id, size, status, progress, \
             created_at) VALUES ('s1', 'p', 'u', 'v1', 2, 'available', '100%', 't')",
        )
        .await;

        let usage = db.usage_by_type("p").await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            usage["gold"],
            TypeUsage {
                volumes: 2,
                snapshots: 1,
                gigabytes: 7
            }
        );
        assert!(db.usage_by_type("nobody").await.unwrap().is_empty());
    }
}
