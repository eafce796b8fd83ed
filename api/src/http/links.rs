//! The `links` of a resource: its `self` and `bookmark` URLs.

use serde::Serialize;
use serde_json::Value;

use crate::http::context::Ctx;

/// One link of a resource.
#[derive(Debug, Serialize)]
pub struct Link {
    rel: &'static str,
    href: String,
}

/// `links` of a resource: `self` and `bookmark`.
pub fn link_pair(ctx: &Ctx, collection: &str, id: &str) -> [Link; 2] {
    [
        Link {
            rel: "self",
            href: format!("{}/{collection}/{id}", ctx.link_base),
        },
        Link {
            rel: "bookmark",
            href: format!("{}/{collection}/{id}", ctx.bookmark_base),
        },
    ]
}

/// `links` as a JSON value, for views still built as values.
pub fn value(ctx: &Ctx, collection: &str, id: &str) -> Value {
    serde_json::to_value(link_pair(ctx, collection, id)).unwrap_or_default()
}
