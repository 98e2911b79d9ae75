//! EMQX's pages: `page` (from 1) and `limit` (1 to 10,000; 100 by default), and the
//! `{data, meta}` answer.

use crate::error::ApiError;
use serde_json::{json, Value};

/// `page` and `limit` as given, or EMQX's 400 `INVALID_PARAMETER`.
pub(crate) fn paging(page: Option<&str>, limit: Option<&str>) -> Result<(usize, usize), ApiError> {
    let parse = |v: Option<&str>, default: usize| match v {
        None => Ok(default),
        Some(s) => s.parse::<usize>().map_err(|_| ()),
    };
    match (parse(page, 1), parse(limit, 100)) {
        (Ok(page), Ok(limit)) if page >= 1 && (1..=10_000).contains(&limit) => Ok((page, limit)),
        _ => Err(ApiError::invalid_parameter("page_limit_invalid")),
    }
}

/// One page of `all` as `{data, meta}`; `meta.count` only when `count` (no filter).
pub(crate) fn page_of<T>(
    all: &[T],
    (page, limit): (usize, usize),
    count: bool,
    render: impl Fn(&T) -> Value,
) -> Value {
    let start = (page - 1).saturating_mul(limit);
    let data: Vec<Value> = all.iter().skip(start).take(limit).map(render).collect();
    let mut meta = json!({
        "page": page,
        "limit": limit,
        "hasnext": start.saturating_add(limit) < all.len(),
    });
    if count {
        meta["count"] = Value::from(all.len());
    }
    json!({ "data": data, "meta": meta })
}
