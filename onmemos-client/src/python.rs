//! Python bindings (`python` feature): the native half of the `onmemos` package.
//!
//! The package's Python half (`python/onmemos`) holds the public API: `Client` and
//! `AsyncClient` with the Rust method names, the model classes and the exception hierarchy.
//! This module gives it one entry point per client, [`NativeClient`], whose `call` (blocking,
//! the GIL released) and `call_async` (an asyncio awaitable) run one operation of the Rust
//! client, named like its method (`sessions.create`), with JSON arguments and answer. Requests,
//! retries and errors are therefore exactly the Rust client's.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Client, Error, ErrorKind, RequestTimeout, Result, RetryPolicy};

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the Rust client: args are (kind, message, status, code, request_id, field, \
     retry_after_secs); the Python package raises the matching OnmemosError subclass."
);

/// What an operation answers: JSON text, or the bytes of an object.
enum Answer {
    Json(String),
    Bytes(bytes::Bytes),
}

fn to_py(py: Python<'_>, answer: Answer) -> Py<PyAny> {
    match answer {
        Answer::Json(text) => text.into_pyobject(py).map(|s| s.into_any().unbind()),
        Answer::Bytes(bytes) => Ok(PyBytes::new(py, &bytes).into_any().unbind()),
    }
    .unwrap_or_else(|never| match never {})
}

fn to_py_err(e: Error) -> PyErr {
    NativeError::new_err((
        format!("{:?}", e.kind()),
        e.message().to_owned(),
        e.status(),
        e.code().map(str::to_owned),
        e.request_id().map(str::to_owned),
        e.field().map(str::to_owned),
        e.retry_after().map(|d| d.as_secs_f64()),
    ))
}

/// One client of one server, shared by the Python `Client` and `AsyncClient`.
#[pyclass(frozen, module = "onmemos._native")]
pub struct NativeClient {
    client: Client,
}

#[pymethods]
impl NativeClient {
    /// A client of `base_url` with `api_key`; `from_env` reads `ONMEMOS_URL`,
    /// `ONMEMOS_API_KEY` and a `.env` file instead.
    #[new]
    #[pyo3(signature = (base_url=None, api_key=None, timeout_secs=None, max_attempts=None, from_env=false))]
    fn new(
        base_url: Option<String>,
        api_key: Option<String>,
        timeout_secs: Option<f64>,
        max_attempts: Option<u32>,
        from_env: bool,
    ) -> PyResult<Self> {
        let client = if from_env {
            Client::from_env()
        } else {
            let mut builder = Client::builder();
            if let Some(url) = base_url {
                builder = builder.base_url(url);
            }
            if let Some(key) = api_key {
                builder = builder.api_key(key);
            }
            if let Some(secs) = timeout_secs {
                let timeout = Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        to_py_err(Error::new(
                            ErrorKind::Configuration,
                            format!("timeout must be a positive number of seconds, got {secs}"),
                        ))
                    })?;
                builder = builder.request_timeout(RequestTimeout(timeout));
            }
            if let Some(attempts) = max_attempts {
                builder = builder.retry_policy(RetryPolicy::default().with_max_attempts(attempts));
            }
            builder.build()
        }
        .map_err(to_py_err)?;
        Ok(Self { client })
    }

    /// The server's base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.client.base_url().to_owned()
    }

    /// Runs `op` with `args` (a JSON object) and `data` (bytes to upload), blocking this
    /// thread, not the interpreter.
    #[pyo3(signature = (op, args, data=None))]
    fn call(
        &self,
        py: Python<'_>,
        op: &str,
        args: &str,
        data: Option<Vec<u8>>,
    ) -> PyResult<Py<PyAny>> {
        let client = self.client.clone();
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        let answer = py
            .detach(|| runtime.block_on(call(&client, op, args, data)))
            .map_err(to_py_err)?;
        Ok(to_py(py, answer))
    }

    /// Like `call`, as an awaitable of the running asyncio loop.
    #[pyo3(signature = (op, args, data=None))]
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        op: String,
        args: String,
        data: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let answer = call(&client, &op, &args, data).await.map_err(to_py_err)?;
            Ok(Python::attach(|py| to_py(py, answer)))
        })
    }
}

/// The error the Rust client gives for an answer of `status` with `body`: lets the Python
/// tests check the exception of every wire code without provoking each one.
#[pyfunction]
fn error_from_response(status: u16, body: &str) -> PyErr {
    to_py_err(Error::from_response(status, body.as_bytes(), None))
}

/// Every wire code of the API.
#[pyfunction]
fn wire_codes() -> Vec<&'static str> {
    onmemos_core::api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

/// The native module `onmemos._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(error_from_response, m)?)?;
    m.add_function(wrap_pyfunction!(wire_codes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The argument `name` of an operation.
fn arg<T: DeserializeOwned>(args: &Value, name: &str) -> Result<T> {
    let value = args.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| {
        Error::new(ErrorKind::Validation, format!("argument {name}: {e}")).with_field(name)
    })
}

fn json<T: Serialize>(value: &T) -> Result<Answer> {
    serde_json::to_string(value)
        .map(Answer::Json)
        .map_err(|e| Error::new(ErrorKind::Decode, format!("encoding the answer: {e}")))
}

/// Runs one operation of the client.
async fn call(client: &Client, op: &str, args: &str, data: Option<Vec<u8>>) -> Result<Answer> {
    let args: Value = serde_json::from_str(args).map_err(|e| {
        Error::new(
            ErrorKind::Validation,
            format!("the arguments are not JSON: {e}"),
        )
    })?;
    let a = &args;
    match op {
        "health" => json(&client.health().await?),
        "ready" => json(&client.ready().await?),

        "users.me" => json(&client.users().me().await?),
        "users.create" => json(&client.users().create(&arg(a, "request")?).await?),
        "users.list" => json(&client.users().list(&arg(a, "params")?).await?),
        "users.get" => json(&client.users().get(arg(a, "id")?).await?),

        "api_keys.create" => json(&client.api_keys().create(&arg(a, "request")?).await?),
        "api_keys.list" => json(&client.api_keys().list(&arg(a, "params")?).await?),
        "api_keys.get" => json(&client.api_keys().get(arg(a, "id")?).await?),
        "api_keys.revoke" => json(&client.api_keys().revoke(arg(a, "id")?).await?),

        "workspaces.create" => json(&client.workspaces().create(&arg(a, "request")?).await?),
        "workspaces.list" => json(&client.workspaces().list(&arg(a, "params")?).await?),
        "workspaces.get" => json(&client.workspaces().get(arg(a, "id")?).await?),
        "workspaces.update" => json(
            &client
                .workspaces()
                .update(arg(a, "id")?, &arg(a, "request")?)
                .await?,
        ),
        "workspaces.delete" => json(&client.workspaces().delete(arg(a, "id")?).await?),

        "templates.create" => json(&client.templates().create(&arg(a, "request")?).await?),
        "templates.list" => json(&client.templates().list(&arg(a, "params")?).await?),
        "templates.get" => json(&client.templates().get(&arg::<String>(a, "id")?).await?),
        "templates.delete" => json(&client.templates().delete(&arg::<String>(a, "id")?).await?),

        "sessions.create" => json(&client.sessions().create(&arg(a, "request")?).await?),
        "sessions.list" => json(&client.sessions().list(&arg(a, "params")?).await?),
        "sessions.get" => json(&client.sessions().get(arg(a, "id")?).await?),
        "sessions.stop" => json(&client.sessions().stop(arg(a, "id")?).await?),
        "sessions.delete" => json(&client.sessions().delete(arg(a, "id")?).await?),
        "sessions.exec" => json(
            &client
                .sessions()
                .exec(arg(a, "id")?, &arg(a, "command")?)
                .await?,
        ),
        "sessions.events" => json(
            &client
                .sessions()
                .events(arg(a, "id")?, &arg(a, "params")?)
                .await?,
        ),

        "estimates.quote" => json(&client.estimates().quote(&arg(a, "request")?).await?),
        "estimates.compare" => json(&client.estimates().compare(&arg(a, "request")?).await?),

        "credits.balance" => json(&client.credits().balance().await?),
        "credits.transfers" => json(&client.credits().transfers(&arg(a, "params")?).await?),
        "credits.purchase" => json(&client.credits().purchase(&arg(a, "request")?).await?),
        "credits.grant" => json(&client.credits().grant(&arg(a, "request")?).await?),
        "credits.pricing" => json(&client.credits().pricing().await?),

        "storage.upload_bytes" => {
            let data = data.ok_or_else(|| {
                Error::new(ErrorKind::Validation, "upload_bytes needs data").with_field("data")
            })?;
            json(
                &client
                    .storage()
                    .upload_bytes(arg(a, "workspace")?, &arg::<String>(a, "path")?, data)
                    .await?,
            )
        }
        "storage.upload_file" => json(
            &client
                .storage()
                .upload_file(
                    arg(a, "workspace")?,
                    &arg::<String>(a, "path")?,
                    &arg::<PathBuf>(a, "file")?,
                    None,
                )
                .await?,
        ),
        "storage.read" => Ok(Answer::Bytes(
            client
                .storage()
                .read(arg(a, "workspace")?, &arg::<String>(a, "path")?)
                .await?,
        )),
        "storage.download_file" => json(
            &client
                .storage()
                .download_file(
                    arg(a, "workspace")?,
                    &arg::<String>(a, "path")?,
                    &arg::<PathBuf>(a, "dest")?,
                    arg::<Option<bool>>(a, "resume")?.unwrap_or(false),
                    None,
                )
                .await?,
        ),
        "storage.head" => json(
            &client
                .storage()
                .head(arg(a, "workspace")?, &arg::<String>(a, "path")?)
                .await?,
        ),
        "storage.delete" => json(
            &client
                .storage()
                .delete(arg(a, "workspace")?, &arg::<String>(a, "path")?)
                .await?,
        ),
        "storage.list" => json(
            &client
                .storage()
                .list(arg(a, "workspace")?, &arg(a, "params")?)
                .await?,
        ),
        "storage.presign" => json(
            &client
                .storage()
                .presign(arg(a, "workspace")?, &arg(a, "request")?)
                .await?,
        ),
        "storage.usage" => json(&client.storage().usage(arg(a, "workspace")?).await?),

        "optimizer.recommendations" => json(
            &client
                .optimizer()
                .recommendations(&arg(a, "request")?)
                .await?,
        ),
        other => Err(Error::new(
            ErrorKind::Validation,
            format!("no operation named {other:?}"),
        )),
    }
}
