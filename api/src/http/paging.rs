//! `limit`, `marker`, `offset` and `sort` parameters, and the `*_links` next link.

use scoria_db::{Page, SortDir, SortKey};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::extract::Params;
use crate::http::fault::{bad_request, ApiError};
use crate::http::validate;

/// The most items one page returns (Cinder's `osapi_max_limit`).
pub const MAX_LIMIT: i64 = 1000;

fn non_negative(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad_request(format!(
                    "Invalid input received: {key} must be a non-negative integer, got '{v}'."
                ))
            })
        })
        .transpose()
}

fn dir(text: &str) -> Result<SortDir, ApiError> {
    match text.to_ascii_lowercase().as_str() {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        other => Err(bad_request(format!(
            "Invalid input received: Unknown sort direction '{other}', must be 'desc' or 'asc'."
        ))),
    }
}

fn key(allowed: &[SortKey], name: &str) -> Result<SortKey, ApiError> {
    allowed
        .iter()
        .find(|k| k.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|k| k.name).collect();
            bad_request(format!(
                "Invalid input received: Invalid sort key '{name}'; use one of: {}.",
                names.join(", ")
            ))
        })
}

/// Reads the paging parameters; the default order is newest first.
pub fn page(params: &Params, allowed: &[SortKey]) -> Result<Page, ApiError> {
    let limit = non_negative(params, "limit")?
        .map(|l| l.min(MAX_LIMIT))
        .unwrap_or(MAX_LIMIT);
    let offset = non_negative(params, "offset")?;
    let marker = params.get("marker").map(str::to_string);
    let legacy = params.get("sort_key").is_some() || params.get("sort_dir").is_some();
    let mut sort = Vec::new();
    if let Some(spec) = params.get("sort") {
        if legacy {
            return Err(bad_request("Invalid input received: the 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'."));
        }
        for item in spec.split(',').filter(|s| !s.trim().is_empty()) {
            let (name, d) = item.trim().split_once(':').unwrap_or((item.trim(), "desc"));
            sort.push((key(allowed, name)?, dir(d)?));
        }
    } else if legacy {
        let name = params.get("sort_key").unwrap_or("created_at");
        let d = params.get("sort_dir").unwrap_or("desc");
        sort.push((key(allowed, name)?, dir(d)?));
    }
    if sort.is_empty() {
        sort.push((key(allowed, "created_at")?, SortDir::Desc));
    }
    Ok(Page {
        sort,
        limit: Some(limit),
        marker,
        offset,
    })
}

/// `[{"rel": "next", "href": …}]` when the page is full, else `None`.
fn next_link(
    base: &str,
    path: &str,
    params: &Params,
    page: &Page,
    count: usize,
    last_id: Option<&str>,
) -> Option<Value> {
    let limit = page.limit.unwrap_or(MAX_LIMIT);
    if count == 0 || (count as i64) < limit {
        return None;
    }
    let mut pairs: Vec<(String, String)> = params
        .0
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    pairs.push(("marker".into(), last_id?.to_string()));
    let query = serde_urlencoded::to_string(&pairs).ok()?;
    Some(json!([{ "rel": "next", "href": format!("{base}/{path}?{query}") }]))
}

/// A listing body: `{key: items}`, plus `{key}_links` with the next page when
/// the page is full. Serialised directly, without an intermediate JSON tree.
pub struct Listing<T> {
    key: &'static str,
    items: Vec<T>,
    next: Option<Value>,
    /// Every matching item, regardless of the page (`with_count`, 3.45).
    count: Option<i64>,
}

impl<T> Listing<T> {
    /// Adds the top-level `count` when given.
    pub fn counted(mut self, count: Option<i64>) -> Self {
        self.count = count;
        self
    }
}

impl<T: Serialize> Serialize for Listing<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.key, &self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry(&format!("{}_links", self.key), next)?;
        }
        if let Some(count) = self.count {
            map.serialize_entry("count", &count)?;
        }
        map.end()
    }
}

impl<T: Serialize> axum::response::IntoResponse for Listing<T> {
    /// Serialises into a buffer sized for the page up front (a listing of a
    /// hundred volumes is ~100 KB; growing from a small buffer copies it many times).
    fn into_response(self) -> axum::response::Response {
        let mut body = Vec::with_capacity(256 + self.items.len() * 1024);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
            Err(e) => crate::http::fault::ApiError(scoria_core::Error::Internal(e.to_string()))
                .into_response(),
        }
    }
}

/// Which of a collection's two listings a request asks for: `GET /<key>`
/// (summaries) or `GET /<key>/detail`; one handler serves both routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    pub detail: bool,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for View {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().trim_end_matches('/');
        Ok(View {
            detail: path.ends_with("/detail"),
        })
    }
}

/// Builds a [`Listing`] of the collection `key` in `view`; `last_id` is the
/// id of the page's last item.
pub fn listing<T>(
    ctx: &Ctx,
    key: &'static str,
    view: View,
    params: &Params,
    page: &Page,
    items: Vec<T>,
    last_id: Option<&str>,
) -> Listing<T> {
    let path = match view.detail {
        true => format!("{key}/detail"),
        false => key.to_string(),
    };
    let next = next_link(&ctx.link_base, &path, params, page, items.len(), last_id);
    Listing {
        key,
        items,
        next,
        count: None,
    }
}

/// Whether a listing should report its total (`with_count=true`, from 3.45).
pub fn with_count(ctx: &Ctx, params: &Params) -> Result<bool, ApiError> {
    match params.get("with_count") {
        Some(v) if ctx.version.at_least(45) => validate::parse_bool(v).ok_or_else(|| {
            bad_request(format!(
                "Invalid input received: with_count must be a boolean, got '{v}'."
            ))
        }),
        _ => Ok(false),
    }
}
