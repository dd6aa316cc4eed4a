//! # onmemos-backends
//!
//! Implementations of the OnMemOS ports, one module per backend, each behind a feature:
//!
//! | port | module | feature |
//! | --- | --- | --- |
//! | `Database` | [`db::sqlite`] | `sqlite` (default) |
//! | `Database` | [`db::postgres`] | `postgres` |
//! | `ComputeProvider` | `compute::LocalCompute` | `local-compute` (default) |
//!
//! Backends convert their errors into [`onmemos_core::Error`] at their boundary and are built
//! from URLs with [`db::connect`] and [`compute::connect`].

pub mod compute;
pub mod db;
#[cfg(feature = "testing")]
pub mod testing;

/// The configuration error for a URL whose backend was compiled out.
pub(crate) fn feature_off(feature: &str, url: &str) -> onmemos_core::Error {
    onmemos_core::Error::configuration(format!(
        "{url:?} needs the `{feature}` feature of onmemos-backends, which this build does not enable"
    ))
}
