//! The domain types of OnMemOS (SPEC §2): those of [`onmemos_types::model`], which are also the
//! JSON the API returns for them, and the records only the engine and its database see.

pub use onmemos_types::model::*;

use crate::passport::KeyDigest;

/// An API key as stored: its metadata and the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's metadata.
    pub key: ApiKey,
    /// The SHA-256 digest of the secret.
    pub digest: KeyDigest,
}
