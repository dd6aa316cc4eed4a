//! The HTTP client: base URL, credentials, timeouts, and one request path for every call.

use std::time::Duration;

use reqwest::{Method, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::resources::{ApiKeys, Credits, Estimates, Sessions, Templates, Users, Workspaces};
use crate::retry::RetryPolicy;

/// Where the client connects when `ONMEMOS_URL` is not set.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The longest a single HTTP request may take, connect to last byte.
///
/// A distinct type from any session lifetime, so the two can never be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeout(pub Duration);

impl Default for RequestTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

/// A client of one OnMemOS server. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    retry: RetryPolicy,
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    api_key: Option<String>,
    timeout: RequestTimeout,
    retry: RetryPolicy,
    user_agent: String,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base: DEFAULT_URL.to_owned(),
            api_key: None,
            timeout: RequestTimeout::default(),
            retry: RetryPolicy::default(),
            user_agent: format!("onmemos-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl ClientBuilder {
    /// A builder with the URL and key of `ONMEMOS_URL` and `ONMEMOS_API_KEY`, read from the
    /// environment or, for variables the environment does not set, from a `.env` file in the
    /// current directory or its parents; the rest (timeouts, retries) is still to set.
    ///
    /// The file is read, never loaded into the process's environment: changing the environment
    /// while other threads run (a tokio runtime, a Python interpreter) is not sound.
    pub fn from_env() -> Result<ClientBuilder> {
        let bad_file = |e: dotenvy::Error| {
            Error::new(
                ErrorKind::Configuration,
                format!("cannot read the .env file: {e}"),
            )
        };
        // A missing .env file is normal (the environment alone may configure the client); a
        // malformed one is an error, not something to skip silently.
        let file: std::collections::HashMap<String, String> = match dotenvy::dotenv_iter() {
            Ok(entries) => entries
                .collect::<std::result::Result<_, _>>()
                .map_err(bad_file)?,
            Err(e) if e.not_found() => Default::default(),
            Err(e) => return Err(bad_file(e)),
        };
        let var = |name: &str| std::env::var(name).ok().or_else(|| file.get(name).cloned());
        let mut builder = Client::builder();
        if let Some(url) = var("ONMEMOS_URL") {
            builder = builder.base_url(url);
        }
        match var("ONMEMOS_API_KEY") {
            Some(key) if !key.trim().is_empty() => Ok(builder.api_key(key.trim())),
            _ => Err(Error::new(
                ErrorKind::Configuration,
                "ONMEMOS_API_KEY is not set (in the environment or a .env file)",
            )),
        }
    }

    /// The server's base URL (`http://127.0.0.1:8080`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base = url.into();
        self
    }

    /// The API key (`onm_…`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The per-request timeout.
    pub fn request_timeout(mut self, timeout: RequestTimeout) -> Self {
        self.timeout = timeout;
        self
    }

    /// How requests are retried ([`RetryPolicy::none`] to never retry).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Builds the client. The URL must be an `http://` or `https://` URL with a host, and a key,
    /// when given, non-empty visible ASCII; anything else is a `Configuration` error before any
    /// request is sent.
    pub fn build(self) -> Result<Client> {
        let base = self.base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!("the server URL must start with http:// or https://, got {base:?}"),
            ));
        }
        // http(s) URLs cannot parse without a host.
        if let Err(e) = reqwest::Url::parse(&base) {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!("the server URL {base:?} is not a URL: {e}"),
            ));
        }
        if let Some(key) = &self.api_key
            && (key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::new(
                ErrorKind::Configuration,
                "the API key must be non-empty visible ASCII (no spaces or line breaks)",
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout.0)
            .user_agent(self.user_agent)
            .build()
            .map_err(Error::transport)?;
        Ok(Client {
            http,
            base,
            api_key: self.api_key,
            retry: self.retry,
        })
    }
}

impl Client {
    /// A builder with defaults (`http://127.0.0.1:8080`, no key, 30 s per request).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured by `ONMEMOS_URL` and `ONMEMOS_API_KEY`, read from the environment or,
    /// for variables the environment does not set, from a `.env` file in the current directory
    /// or its parents.
    pub fn from_env() -> Result<Client> {
        ClientBuilder::from_env()?.build()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Workspaces.
    pub fn workspaces(&self) -> Workspaces<'_> {
        Workspaces::new(self)
    }

    /// Templates.
    pub fn templates(&self) -> Templates<'_> {
        Templates::new(self)
    }

    /// The caller's API keys.
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys::new(self)
    }

    /// Users (mostly admin).
    pub fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    /// Credits: balance, transfers, purchases and grants, prices.
    pub fn credits(&self) -> Credits<'_> {
        Credits::new(self)
    }

    /// Workspace storage: streamed uploads and downloads, listings, presigned URLs.
    pub fn storage(&self) -> crate::storage::Storage<'_> {
        crate::storage::Storage::new(self)
    }

    /// Sessions: lifecycle, exec, events.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(self)
    }

    /// Cost estimates.
    pub fn estimates(&self) -> Estimates<'_> {
        Estimates::new(self)
    }

    /// The cost optimizer.
    pub fn optimizer(&self) -> crate::resources::Optimizer<'_> {
        crate::resources::Optimizer::new(self)
    }

    /// Opens the terminal of a running session over the shell WebSocket, 24×80, reconnecting
    /// a lost connection for up to 60 s (the server's default grace period).
    pub async fn shell(
        &self,
        session: onmemos_types::id::SessionId,
    ) -> Result<crate::shell::Shell> {
        self.shell_with(session, crate::shell::ShellOptions::default())
            .await
    }

    /// Opens the terminal of a running session with `options` (size, reconnection window).
    pub async fn shell_with(
        &self,
        session: onmemos_types::id::SessionId,
        options: crate::shell::ShellOptions,
    ) -> Result<crate::shell::Shell> {
        crate::shell::Shell::connect(&self.base, self.api_key.as_deref(), session, options).await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<onmemos_types::api::Health> {
        self.get("/healthz").await
    }

    /// `GET /readyz`: whether the server can take requests (its database answers). A server
    /// that is not ready answers 503, an error of kind `Server`; this probe is never retried.
    pub async fn ready(&self) -> Result<onmemos_types::api::Health> {
        let resp = self.execute(self.raw(Method::GET, "/readyz")).await?;
        let bytes = resp.bytes().await.map_err(Error::transport)?;
        decode(&bytes)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let bytes = self
            .send(Method::GET, path, None::<&()>, None::<&()>)
            .await?;
        decode(&bytes)
    }

    pub(crate) async fn get_with<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T> {
        let bytes = self
            .send(Method::GET, path, Some(query), None::<&()>)
            .await?;
        decode(&bytes)
    }

    pub(crate) async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let bytes = self.send(method, path, None::<&()>, Some(body)).await?;
        decode(&bytes)
    }

    pub(crate) async fn delete_path<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let bytes = self
            .send(Method::DELETE, path, None::<&()>, None::<&()>)
            .await?;
        if bytes.is_empty() {
            Ok(None)
        } else {
            decode(&bytes).map(Some)
        }
    }

    /// A request to `path` with the caller's credentials, to be sent with [`Self::execute`].
    pub(crate) fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// Sends `req`; an error answer becomes the matching [`Error`].
    pub(crate) async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(Error::transport)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(Error::transport)?;
        Err(Error::from_response(status, &bytes, retry_after))
    }

    /// Sends a request with a JSON body or none, retrying it under the client's
    /// [`RetryPolicy`]; a POST keeps one idempotency key over all its attempts.
    async fn send<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<bytes::Bytes> {
        // Every POST carries an idempotency key, so a retry cannot apply it twice.
        let key = (method == Method::POST).then(|| uuid::Uuid::now_v7().to_string());
        let mut schedule = self.retry.schedule();
        loop {
            let mut req = self.raw(method.clone(), path);
            if let Some(key) = &key {
                req = req.header("idempotency-key", key);
            }
            if let Some(query) = query {
                req = req.query(query);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let outcome = match self.execute(req).await {
                Ok(resp) => resp.bytes().await.map_err(Error::transport),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(bytes) => return Ok(bytes),
                Err(e) => match schedule.next_wait(&method, &e) {
                    Some(wait) => {
                        tracing::debug!(%method, path, error = %e, ?wait, "retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::decode(e, 200))
}
