//! The `StorageProvider` conformance suite on servers speaking each cloud's protocol: S3 on
//! moto, Azure Blob on Azurite (every check), GCS on fake-gcs-server (the read checks, seeded
//! through its JSON API: it lacks the XML upload path object_store writes with).
#![cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]

use std::path::Path;
use std::sync::Arc;

use onmemos_backends::storage;
use onmemos_backends::testing::emulator_store;
use onmemos_core::ports::StorageProvider;

fn open(scheme: &str) -> Option<Arc<dyn StorageProvider>> {
    let (url, options) = emulator_store(scheme)?;
    Some(
        storage::connect(&url, &options, Path::new("/nonexistent"))
            .unwrap_or_else(|e| panic!("open {url}: {e}")),
    )
}

mod s3 {
    use super::*;

    async fn fresh() -> Option<Arc<dyn StorageProvider>> {
        open("s3")
    }

    onmemos_core::storage_conformance!(|| fresh());
}

mod azure {
    use super::*;

    async fn fresh() -> Option<Arc<dyn StorageProvider>> {
        open("az")
    }

    onmemos_core::storage_conformance!(|| fresh());
}

mod gcs {
    use super::*;

    use async_trait::async_trait;
    use bytes::Bytes;
    use onmemos_core::testing::storage::Seeder;

    /// Writes objects through fake-gcs-server's JSON upload API, under the store's root.
    struct JsonApiSeeder {
        http: reqwest::Client,
        endpoint: String,
        root: String,
    }

    #[async_trait]
    impl Seeder for JsonApiSeeder {
        async fn seed(&self, path: &str, body: Bytes) {
            let name = format!("{}/{path}", self.root);
            let url = format!(
                "{}/upload/storage/v1/b/{}/o",
                self.endpoint,
                onmemos_backends::testing::TEST_BUCKET
            );
            let answer = self
                .http
                .post(url)
                .query(&[("uploadType", "media"), ("name", name.as_str())])
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("seed {name}: {e}"));
            assert!(
                answer.status().is_success(),
                "seed {name}: {}",
                answer.status()
            );
        }
    }

    async fn fresh() -> Option<(Arc<dyn StorageProvider>, Arc<dyn Seeder>)> {
        let (url, options) = emulator_store("gs")?;
        let store = storage::connect(&url, &options, Path::new("/nonexistent"))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        let root = url.rsplit('/').next().unwrap_or_default().to_owned();
        let seeder = JsonApiSeeder {
            http: reqwest::Client::new(),
            endpoint: options["base_url"].clone(),
            root,
        };
        Some((store, Arc::new(seeder)))
    }

    onmemos_core::storage_read_conformance!(|| fresh());
}
