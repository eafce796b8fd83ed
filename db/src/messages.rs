//! User messages about asynchronous failures.

use scoria_core::model::UserMessage;
use scoria_core::{time, Error};
use sqlx::any::AnyRow;

use crate::query::{check_marker, Like, LikeKey, Page, SortKey, Sql};
use crate::{db_err, get_opt, get_str, Db, Result};

/// Filters of a message listing.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub project_id: Option<String>,
    pub resource_uuid: Option<String>,
    pub resource_type: Option<String>,
    pub event_id: Option<String>,
    pub request_id: Option<String>,
    pub message_level: Option<String>,
    /// Substring filters (3.34).
    pub like: Vec<Like>,
    pub page: Page,
}

impl MessageQuery {
    /// Keys a message listing may filter by substring.
    pub const LIKE_KEYS: &'static [LikeKey] = &[
        LikeKey::new("resource_uuid", "resource_uuid"),
        LikeKey::new("resource_type", "resource_type"),
        LikeKey::new("event_id", "event_id"),
        LikeKey::new("request_id", "request_id"),
        LikeKey::new("message_level", "message_level"),
    ];

    /// Keys a message listing may be sorted by.
    pub const SORT_KEYS: &'static [SortKey] = &[
        SortKey::column("created_at", "created_at"),
        SortKey::column("id", "id"),
        SortKey::column("event_id", "event_id"),
        SortKey::column("resource_type", "resource_type"),
        SortKey::column("message_level", "message_level"),
    ];
}

fn from_row(row: &AnyRow) -> Result<UserMessage> {
    Ok(UserMessage {
        id: get_str(row, "id")?,
        project_id: get_str(row, "project_id")?,
        request_id: get_str(row, "request_id")?,
        resource_type: get_str(row, "resource_type")?,
        resource_uuid: get_opt(row, "resource_uuid")?,
        event_id: get_str(row, "event_id")?,
        message_level: get_str(row, "message_level")?,
        user_message: get_str(row, "user_message")?,
        created_at: get_str(row, "created_at")?,
        expires_at: get_str(row, "expires_at")?,
    })
}

impl Db {
    /// Stores a message.
    pub async fn insert_message(&self, m: &UserMessage) -> Result<()> {
        let mut sql = Sql::new(
            "INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, \
             event_id, message_level, user_message, created_at, expires_at) VALUES (",
        );
        sql.bind(&m.id)
            .push(", ")
            .bind(&m.project_id)
            .push(", ")
            .bind(&m.request_id);
        sql.push(", ")
            .bind(&m.resource_type)
            .push(", ")
            .bind(m.resource_uuid.clone());
        sql.push(", ")
            .bind(&m.event_id)
            .push(", ")
            .bind(&m.message_level);
        sql.push(", ")
            .bind(&m.user_message)
            .push(", ")
            .bind(&m.created_at);
        sql.push(", ").bind(&m.expires_at).push(")");
        sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    /// A page of unexpired messages matching `q`.
    pub async fn list_messages(&self, q: &MessageQuery) -> Result<Vec<UserMessage>> {
        check_marker(&self.pool, "messages", &q.page.marker).await?;
        let mut sql = Sql::new("SELECT * FROM messages g WHERE g.expires_at > ");
        sql.bind(time::now());
        let filters = [
            ("g.project_id", &q.project_id),
            ("g.resource_uuid", &q.resource_uuid),
            ("g.resource_type", &q.resource_type),
            ("g.event_id", &q.event_id),
            ("g.request_id", &q.request_id),
            ("g.message_level", &q.message_level),
        ];
        for (col, value) in filters {
            if let Some(value) = value {
                sql.push(&format!(" AND {col} = ")).bind(value.as_str());
            }
        }
        sql.push_likes("g", &q.like);
        q.page.apply(&mut sql, "messages", "g");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// One message, or 404.
    pub async fn get_message(&self, id: &str) -> Result<UserMessage> {
        let mut sql = Sql::new("SELECT * FROM messages WHERE id = ");
        sql.bind(id);
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        from_row(&row.ok_or_else(|| Error::not_found("Message", id))?)
    }

    /// Deletes one message; false when it did not exist.
    pub async fn delete_message(&self, id: &str) -> Result<bool> {
        let mut sql = Sql::new("DELETE FROM messages WHERE id = ");
        sql.bind(id);
        let done = sql.query().execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
