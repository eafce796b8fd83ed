//! A small SQL builder: numbered placeholders that work on SQLite and
//! PostgreSQL alike, and keyset pagination (sort keys + marker).

use scoria_core::Error;
use sqlx::any::AnyArguments;
use sqlx::Any;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(s.to_string())
    }
}
impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(s)
    }
}
impl From<&String> for Param {
    fn from(s: &String) -> Self {
        Param::Text(s.clone())
    }
}
impl From<Option<String>> for Param {
    fn from(s: Option<String>) -> Self {
        Param::OptText(s)
    }
}
impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Int(v as i64)
    }
}

/// SQL text with its parameters, numbered `$1…` in order of binding.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    /// Appends raw SQL.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Binds a value and appends its placeholder.
    pub fn bind(&mut self, p: impl Into<Param>) -> &mut Self {
        let ph = self.placeholder(p);
        self.text.push_str(&ph);
        self
    }

    /// Binds a value and returns its placeholder without appending it.
    pub fn placeholder(&mut self, p: impl Into<Param>) -> String {
        self.params.push(p.into());
        format!("${}", self.params.len())
    }

    /// Appends `col IN ($a, $b, …)`.
    pub fn push_in(&mut self, col: &str, values: &[&str]) -> &mut Self {
        let phs: Vec<String> = values.iter().map(|v| self.placeholder(*v)).collect();
        self.text
            .push_str(&format!("{col} IN ({})", phs.join(", ")));
        self
    }

    /// The query ready to run.
    pub fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for p in &self.params {
            q = match p {
                Param::Text(s) => q.bind(s.clone()),
                Param::OptText(s) => q.bind(s.clone()),
                Param::Int(v) => q.bind(*v),
            };
        }
        q
    }
}

/// A text column a listing may filter by substring (`key~=value`, 3.34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeKey {
    /// Name as the API accepts it (without the `~`).
    pub name: &'static str,
    /// Column in the table.
    pub column: &'static str,
}

impl LikeKey {
    /// The API's `name` for `column`.
    pub const fn new(name: &'static str, column: &'static str) -> Self {
        LikeKey { name, column }
    }
}

/// A substring filter: rows whose column contains `value`, ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Like {
    pub key: LikeKey,
    pub value: String,
}

impl Sql {
    /// Appends `AND LOWER(alias.column) LIKE '%value%'` per filter, with `%`,
    /// `_` and `\` in the value matched literally.
    pub fn push_likes(&mut self, alias: &str, likes: &[Like]) -> &mut Self {
        for like in likes {
            let escaped = like
                .value
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let ph = self.placeholder(format!("%{}%", escaped.to_lowercase()));
            self.push(&format!(
                " AND LOWER({alias}.{}) LIKE {ph} ESCAPE '\\'",
                like.key.column
            ));
        }
        self
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

/// A sortable column of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// Name as the API accepts it.
    pub name: &'static str,
    /// Column in the table.
    pub column: &'static str,
    /// Text column that may be NULL (sorted as the empty string).
    pub nullable: bool,
}

impl SortKey {
    /// The API's `name` for a `column` that is never NULL.
    pub const fn column(name: &'static str, column: &'static str) -> Self {
        SortKey {
            name,
            column,
            nullable: false,
        }
    }

    /// The API's `name` for a text `column` that may be NULL.
    pub const fn nullable(name: &'static str, column: &'static str) -> Self {
        SortKey {
            name,
            column,
            nullable: true,
        }
    }

    fn expr(&self, alias: &str) -> String {
        if self.nullable {
            format!("COALESCE({alias}.{}, '')", self.column)
        } else {
            format!("{alias}.{}", self.column)
        }
    }
}

/// Which slice of a listing to return.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Sort keys, most significant first; `id` is always added last.
    pub sort: Vec<(SortKey, SortDir)>,
    pub limit: Option<i64>,
    /// Id of the last item of the previous page.
    pub marker: Option<String>,
    pub offset: Option<i64>,
}

const ID_KEY: SortKey = SortKey::column("id", "id");

impl Page {
    fn keys(&self) -> Vec<(SortKey, SortDir)> {
        let mut keys = self.sort.clone();
        let last_dir = keys.last().map_or(SortDir::Desc, |k| k.1);
        if !keys.iter().any(|(k, _)| k.column == "id") {
            keys.push((ID_KEY, last_dir));
        }
        keys
    }

    /// Appends the marker condition (`AND (…)`), ORDER BY, LIMIT and OFFSET.
    /// `table` is the table the marker id belongs to, `alias` its alias in the query.
    pub(crate) fn apply(&self, sql: &mut Sql, table: &str, alias: &str) {
        let keys = self.keys();
        if let Some(marker) = &self.marker {
            let mut ors = Vec::new();
            for i in 0..keys.len() {
                let mut ands = Vec::new();
                for (k, _) in &keys[..i] {
                    let m = sql.placeholder(marker.as_str());
                    ands.push(format!(
                        "{} = (SELECT {} FROM {table} m WHERE m.id = {m})",
                        k.expr(alias),
                        k.expr("m")
                    ));
                }
                let (k, dir) = keys[i];
                let op = if dir == SortDir::Desc { "<" } else { ">" };
                let m = sql.placeholder(marker.as_str());
                ands.push(format!(
                    "{} {op} (SELECT {} FROM {table} m WHERE m.id = {m})",
                    k.expr(alias),
                    k.expr("m")
                ));
                ors.push(format!("({})", ands.join(" AND ")));
            }
            sql.push(&format!(" AND ({})", ors.join(" OR ")));
        }
        let order: Vec<String> = keys
            .iter()
            .map(|(k, d)| {
                let dir = if *d == SortDir::Desc { "DESC" } else { "ASC" };
                format!("{} {dir}", k.expr(alias))
            })
            .collect();
        sql.push(&format!(" ORDER BY {}", order.join(", ")));
        if let Some(limit) = self.limit {
            sql.push(" LIMIT ").bind(limit);
        } else if self.offset.is_some() {
            sql.push(" LIMIT ").bind(i64::MAX);
        }
        if let Some(offset) = self.offset {
            sql.push(" OFFSET ").bind(offset);
        }
    }
}

/// Fails with 404 when a marker names no row of `table` visible to the caller.
pub(crate) async fn check_marker(
    pool: &sqlx::AnyPool,
    table: &str,
    marker: &Option<String>,
) -> Result<(), Error> {
    let Some(marker) = marker else { return Ok(()) };
    let mut sql = Sql::new(&format!("SELECT id FROM {table} WHERE id = "));
    sql.bind(marker.as_str());
    let found = sql
        .query()
        .fetch_optional(pool)
        .await
        .map_err(crate::db_err)?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!(
            "Marker {marker} could not be found."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_values_match_literally() {
        let key = LikeKey::new("name", "name");
        let mut sql = Sql::new("SELECT 1 FROM t v WHERE 1 = 1");
        sql.push_likes(
            "v",
            &[Like {
                key,
                value: "50%_A\\".into(),
            }],
        );
        assert!(sql.text.ends_with(" AND LOWER(v.name) LIKE $1 ESCAPE '\\'"));
        assert!(matches!(&sql.params[0], Param::Text(t) if t == "%50\\%\\_a\\\\%"));
    }
}
