use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An object in a workspace's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredObject {
    /// The path inside the workspace (`data/train.csv`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// The store's entity tag, when it has one (quoted, as in HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The query of `GET /v1/workspaces/{id}/files`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ObjectListParams {
    /// Only objects whose path starts with this (as a string: `rep` matches `report.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Items per page (1–1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What a presigned URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum PresignMethod {
    /// Download the object.
    Get,
    /// Upload (replace) the object.
    Put,
}

/// The body of `POST /v1/workspaces/{id}/files:presign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    /// The object's path inside the workspace.
    pub path: String,
    /// `GET` or `PUT`.
    pub method: PresignMethod,
    /// How long the URL works, in seconds (1 to the server's maximum, default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// A URL that allows one method on one object without credentials until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresignedUrl {
    /// The URL, straight to the object store.
    pub url: String,
    /// The method it allows.
    pub method: PresignMethod,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The largest object, in bytes: 5 TiB (S3's limit; every store here holds it).
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;

/// The body of `POST /v1/workspaces/{id}/uploads`: an object to upload in parts, resumably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// The object's path inside the workspace.
    pub path: String,
    /// The object's size in bytes (counted against the quota until the upload ends), at most
    /// [`MAX_OBJECT_BYTES`] (5 TiB, S3's limit).
    #[cfg_attr(feature = "openapi", schema(maximum = 5_497_558_138_880_u64))]
    pub size: u64,
    /// The content type to record, where the store keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}
