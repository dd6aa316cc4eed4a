//! The configuration of `onmemos serve` and the admin commands.
//!
//! Settings come from, highest precedence first: command-line flags, environment variables
//! (`ONMEMOS_LISTEN`, `ONMEMOS_SERVER__MAX_BODY_BYTES` — `__` separates nested keys), a `.env`
//! file, a TOML file (`--config`, `ONMEMOS_CONFIG`, or `onmemos.toml` when present), and
//! built-in defaults that need nothing installed (SQLite and files under `./onmemos-data`).
//! An invalid setting stops start-up with a message naming the key and where it came from.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "/var/lib/onmemos"
//! database_url = "sqlite:///var/lib/onmemos/onmemos.db"
//!
//! [server]
//! max_body_bytes = 1048576
//!
//! [engine]
//! key_touch_interval_secs = 60
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use onmemos::core::EngineConfig;
use onmemos::server::ServerConfig;
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything `onmemos serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Where the embedded database and local files live.
    pub data_dir: PathBuf,
    /// The database URL; empty means `sqlite://<data_dir>/onmemos.db`.
    pub database_url: String,
    /// Where sessions run: `local://` (processes under a PTY on this machine, sandboxed with
    /// bubblewrap when installed), `local://?sandbox=off`, `kube://[CONTEXT|in-cluster]?…`
    /// (pods on a Kubernetes cluster; see docs/compute.md), or `none` (no sessions).
    pub compute_url: String,
    /// Where workspace files live: `file://` (under `<data_dir>/storage`), `file:///dir`,
    /// `memory://`, `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, or
    /// `none` (no storage).
    pub storage_url: String,
    /// Options of the object store, by the `object_store` crate's keys (`endpoint`,
    /// `allow_http`, `region`…); credentials otherwise come from the environment, the cloud's
    /// usual way.
    #[serde(deserialize_with = "scalar_map")]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Bounds on HTTP requests.
    pub server: ServerConfig,
    /// Engine settings (limits, key use recording).
    pub engine: EngineConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("onmemos-data"),
            database_url: String::new(),
            compute_url: "local://".into(),
            storage_url: "file://".into(),
            storage_options: Default::default(),
            log_format: LogFormat::Pretty,
            server: ServerConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// Settings given as command-line flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--compute-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_url: Option<String>,
    /// `--storage-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// The top-level keys environment variables may set (other `ONMEMOS_*` variables, such as the
/// client's `ONMEMOS_URL`, are not server settings).
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "compute_url",
    "storage_url",
    "storage_options",
    "log_format",
    "server",
    "engine",
];

impl ServeConfig {
    /// Loads the layered configuration. `config_file` is the `--config` flag; when absent,
    /// `ONMEMOS_CONFIG` or `./onmemos.toml` (if it exists) is read.
    pub fn load(config_file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Self> {
        // Variables already in the environment win over the .env file. The `onmemos` binary
        // loads it before its runtime starts, so in the binary this sets nothing: every
        // variable of the file is already there.
        let _ = dotenvy::dotenv();
        let file = match config_file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                Some(path.to_path_buf())
            }
            None => std::env::var_os("ONMEMOS_CONFIG")
                .map(PathBuf::from)
                .or_else(|| Some(PathBuf::from("onmemos.toml")).filter(|p| p.exists())),
        };
        let mut figment = Figment::from(Serialized::defaults(ServeConfig::default()));
        if let Some(file) = &file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(
                Env::prefixed("ONMEMOS_")
                    .filter(|key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        ENV_KEYS.iter().any(|k| top.eq_ignore_ascii_case(k))
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(flags));
        let config: ServeConfig = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", describe(e)))?;
        config
            .engine
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: engine.{}", e.message()))?;
        Ok(config)
    }

    /// Creates the data directory, opens the database (running its migrations) and builds the
    /// engine with these settings.
    pub async fn open_engine(&self) -> anyhow::Result<onmemos::core::Engine> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data_dir {}: {e}", self.data_dir.display())
        })?;
        let db = onmemos::backends::db::connect(&self.database_url()).await?;
        let optimizer = onmemos::optimizer::CostOptimizer::new()?;
        let mut builder = onmemos::core::Engine::builder(db)
            .with_config(self.engine.clone())
            .with_optimizer(std::sync::Arc::new(optimizer));
        if self.compute_url != "none" {
            let compute = onmemos::backends::compute::connect(&self.compute_url, &self.data_dir)
                .await
                .map_err(|e| anyhow::anyhow!("compute_url: {}", e.message()))?;
            builder = builder.with_compute(compute);
        }
        if self.storage_url != "none" {
            let storage = onmemos::backends::storage::connect(
                &self.storage_url,
                &self.storage_options,
                &self.data_dir,
            )
            .map_err(|e| anyhow::anyhow!("storage_url: {}", e.message()))?;
            builder = builder.with_storage(storage);
        }
        Ok(builder.build().await?)
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("onmemos.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// A map of option values given as text, numbers or booleans (environment variables such as
/// `ONMEMOS_STORAGE_OPTIONS__ALLOW_HTTP=true` arrive typed), kept as text.
fn scalar_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Flag(bool),
        Int(i64),
        Float(f64),
    }
    let map = std::collections::BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Scalar::Text(s) => s,
                Scalar::Flag(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
            };
            (k, text)
        })
        .collect())
}

fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let from = e
                .metadata
                .as_ref()
                .map(|m| {
                    // Name the exact variable (`ONMEMOS_SERVER__MAX_BODY_BYTES`).
                    let name = if m.name.contains("environment variable") {
                        format!("ONMEMOS_{}", e.path.join("__").to_uppercase())
                    } else {
                        m.name.to_string()
                    };
                    match &m.source {
                        Some(source) => format!(" (from {name} in {source})"),
                        None => format!(" (from {name})"),
                    }
                })
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{from}", e.kind)
            } else {
                format!("key `{key}`: {}{from}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment::Jail fixes the closure's error type to figment's own (large) error.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_precedence_order_and_bad_values_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "onmemos.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"from-toml\"\n[server]\nmax_body_bytes = 10\n",
            )?;
            let c =
                ServeConfig::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9000);
            assert_eq!(c.server.max_body_bytes, 10);

            jail.create_file(
                ".env",
                "ONMEMOS_DATA_DIR=from-dotenv\nONMEMOS_LISTEN=127.0.0.1:9100\n",
            )?;
            jail.set_env("ONMEMOS_LISTEN", "127.0.0.1:9200");
            jail.set_env("ONMEMOS_URL", "http://client-only");
            let c =
                ServeConfig::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.data_dir, PathBuf::from("from-dotenv"), ".env beats TOML");
            assert_eq!(c.listen.port(), 9200, "environment beats .env");

            let flags = FlagOverrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 9300))),
                ..Default::default()
            };
            let c = ServeConfig::load(None, &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9300, "flags beat everything");

            jail.set_env("ONMEMOS_SERVER__MAX_BODY_BYTES", "lots");
            let err = ServeConfig::load(None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("server.max_body_bytes"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_inconsistent_limits_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("onmemos.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let err = ServeConfig::load(None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string());
            assert!(err.unwrap_or_default().contains("lisen"));
            jail.create_file(
                "onmemos.toml",
                "[engine.default_limits]\nmax_duration_secs = 999999\nmax_cost_micros = 1\nidle_timeout_secs = 60\n",
            )?;
            let err = ServeConfig::load(None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string());
            assert!(
                err.unwrap_or_default().contains("engine."),
                "limit errors name the section"
            );
            Ok(())
        });
    }
}
