//! # onmemos-backends
//!
//! Implementations of the OnMemOS ports, one module per backend, each behind a feature:
//!
//! | port | module | feature |
//! | --- | --- | --- |
//! | `Database` | [`db::sqlite`] | `sqlite` (default) |
//! | `Database` | [`db::postgres`] | `postgres` |
//! | `ComputeProvider` | `compute::LocalCompute` | `local-compute` (default) |
//! | `StorageProvider` | `storage::LocalStorage`, the local file system | `local-storage` (default) |
//! | `StorageProvider` | [`storage::ObjectStorage`] on S3, GCS, Azure Blob | `s3`, `gcs`, `azure` |
//! | `StorageProvider` | [`storage::ObjectStorage`] in memory | always |
//!
//! Backends convert their errors into [`onmemos_core::Error`] at their boundary and are built
//! from URLs with [`db::connect`], [`storage::connect`] and [`compute::connect`].

pub mod compute;
pub mod db;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

/// The configuration error for a URL whose backend was compiled out.
pub(crate) fn feature_off(feature: &str, url: &str) -> onmemos_core::Error {
    onmemos_core::Error::configuration(format!(
        "{url:?} needs the `{feature}` feature of onmemos-backends, which this build does not enable"
    ))
}
