//! The cloud stores: S3 (`s3`), GCS (`gcs`) and Azure Blob (`azure`), each an `object_store`
//! builder configured from the environment and the storage options, under [`ObjectStorage`].

use std::sync::Arc;

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use object_store::{ObjectStore, multipart::MultipartStore, signer::Signer};
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use onmemos_core::Error;
use onmemos_core::Result;
use onmemos_core::ports::StorageProvider;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use onmemos_core::ports::compute::BucketStore;

use super::StorageOptions;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use super::object::ObjectStorage;

/// The store of a cloud storage URL (`scheme` is `s3`, `gs` or `az`), or a configuration error
/// naming the feature it needs.
// Without a cloud feature, the parameters go unused.
#[allow(unused_variables)]
pub(super) fn connect(
    scheme: &str,
    url: &str,
    bucket: &str,
    prefix: &str,
    options: &StorageOptions,
) -> Result<Arc<dyn StorageProvider>> {
    match scheme {
        "s3" => {
            #[cfg(feature = "s3")]
            return s3(url, bucket, prefix, options);
            #[cfg(not(feature = "s3"))]
            return Err(crate::feature_off("s3", url));
        }
        "gs" => {
            #[cfg(feature = "gcs")]
            return gcs(url, bucket, prefix, options);
            #[cfg(not(feature = "gcs"))]
            return Err(crate::feature_off("gcs", url));
        }
        _ => {
            #[cfg(feature = "azure")]
            return azure(url, bucket, prefix, options);
            #[cfg(not(feature = "azure"))]
            return Err(crate::feature_off("azure", url));
        }
    }
}

/// Installs ring as the process's TLS provider unless one is installed already (the HTTP
/// client of the cloud stores is built without a provider of its own).
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Applies `options` to a builder through its `with_config`, naming an unknown key.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn configure<B, K>(
    url: &str,
    mut builder: B,
    options: &StorageOptions,
    with: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K: std::str::FromStr,
{
    for (key, value) in options {
        let key_parsed: K = key.parse().map_err(|_| {
            Error::configuration(format!("storage option `{key}` is not one {url:?} knows"))
        })?;
        builder = with(builder, key_parsed, value);
    }
    Ok(builder)
}

/// What a compute needs to mount a bucket of store `name`: the S3 region and the Azure
/// account, from the storage options or the environment the store reads them from too.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn bucket_store(name: &str, options: &StorageOptions) -> BucketStore {
    let find = |keys: &[&str], vars: &[&str]| {
        keys.iter()
            .find_map(|k| options.get(*k).cloned())
            .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
    };
    match name {
        "s3" => BucketStore::S3 {
            region: find(
                &["region", "aws_region"],
                &["AWS_REGION", "AWS_DEFAULT_REGION"],
            ),
        },
        "gcs" => BucketStore::Gcs,
        _ => BucketStore::Azure {
            account: find(
                &["account_name", "azure_storage_account_name"],
                &["AZURE_STORAGE_ACCOUNT_NAME"],
            )
            .unwrap_or_default(),
        },
    }
}

/// The storage over a built cloud store, which also presigns.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn cloud_storage<S: ObjectStore + Signer + MultipartStore>(
    name: &'static str,
    url: &str,
    (bucket, root): (&str, &str),
    options: &StorageOptions,
    built: object_store::Result<S>,
) -> Result<Arc<dyn StorageProvider>> {
    let store =
        Arc::new(built.map_err(|e| Error::configuration(format!("storage_url {url:?}: {e}")))?);
    Ok(Arc::new(
        ObjectStorage::over(name, store.clone(), root)
            .with_signer(store.clone())
            .with_multipart(store)
            .with_bucket(bucket_store(name, options), bucket),
    ))
}

/// Defines the constructor `$fn` of a cloud store: its builder from the environment, for
/// `bucket`, then `options` by key, plus any `$extra` builder calls.
macro_rules! cloud_constructor {
    ($(#[$doc:meta])* $feature:literal, $fn:ident, $name:literal, $builder:ty, $key:ty, $bucket:ident $(, $extra:expr)?) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        fn $fn(
            url: &str,
            bucket: &str,
            root: &str,
            options: &StorageOptions,
        ) -> Result<Arc<dyn StorageProvider>> {
            tls_provider();
            let builder = <$builder>::from_env().$bucket(bucket);
            $(let builder = $extra(builder);)?
            let builder = configure(url, builder, options, |b, k: $key, v| b.with_config(k, v))?;
            cloud_storage($name, url, (bucket, root), options, builder.build())
        }
    };
}

cloud_constructor!(
    /// An S3 bucket (or an S3-compatible store given by the `endpoint` option). Conditional
    /// creates of large objects use `copy_if_not_exists`, by default the multipart way (S3's
    /// conditional `CompleteMultipartUpload`).
    "s3", s3, "s3", object_store::aws::AmazonS3Builder, object_store::aws::AmazonS3ConfigKey,
    with_bucket_name,
    |b: object_store::aws::AmazonS3Builder| b.with_copy_if_not_exists(
        object_store::aws::S3CopyIfNotExists::Multipart
    )
);
cloud_constructor!(
    /// A GCS bucket (the `base_url` option points at another endpoint).
    "gcs", gcs, "gcs", object_store::gcp::GoogleCloudStorageBuilder,
    object_store::gcp::GoogleConfigKey, with_bucket_name
);
cloud_constructor!(
    /// An Azure Blob container (the `endpoint` option points at another endpoint, e.g.
    /// Azurite).
    "azure", azure, "azure", object_store::azure::MicrosoftAzureBuilder,
    object_store::azure::AzureConfigKey, with_container_name
);
