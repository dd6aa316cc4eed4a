use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::api::ErrorCode;
use crate::error::{Error, Result};

/// Items per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most items a page can hold.
pub const MAX_PAGE_SIZE: u32 = 200;

/// The query parameters of every list endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListParams {
    /// Items per page (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl ListParams {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit: Some(limit),
            cursor: None,
        }
    }

    /// Checks the limit and decodes the cursor into the id type `I` the list is ordered by.
    pub fn to_request<I: FromStr>(&self) -> Result<PageRequest<I>> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(cursor.parse::<I>().map_err(|_| {
                Error::with_code(
                    ErrorCode::InvalidCursor,
                    "cursor is not one this list returned",
                )
                .with_context("field", "cursor")
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

/// A validated page request: at most `limit` items ordered by id, after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<I> {
    /// Items per page.
    pub limit: u32,
    /// Return items whose id sorts after this one.
    pub after: Option<I>,
}

impl<I> PageRequest<I> {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

/// One page of a list, and the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` from a query that fetched up to `limit + 1` rows: the extra row, if
    /// present, only says that a next page exists.
    pub fn from_overfetch<I: ToString>(
        mut items: Vec<T>,
        limit: u32,
        id: impl Fn(&T) -> I,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| id(last).to_string())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
