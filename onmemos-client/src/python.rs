//! Python bindings (`python` feature): the native half of the `onmemos` package.
//!
//! The package's Python half (`python/onmemos`) holds the public API: `Client` and
//! `AsyncClient` with the Rust method names, the model classes and the exception hierarchy.
//! This module gives it one entry point per client, [`NativeClient`], whose `call` (blocking,
//! the GIL released) and `call_async` (an asyncio awaitable) run one operation of the Rust
//! client, named like its method (`sessions.create`), with JSON arguments and answer. Requests,
//! retries and errors are therefore exactly the Rust client's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::BoundObject;
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

impl<'py> IntoPyObject<'py> for Answer {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Answer::Json(text) => text.into_pyobject(py)?.into_any(),
            Answer::Bytes(bytes) => PyBytes::new(py, &bytes).into_any(),
        })
    }
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

/// Runs `work` on the shared runtime, blocking this thread with the interpreter released.
fn blocking<T: Send>(
    py: Python<'_>,
    work: impl std::future::Future<Output = Result<T>> + Send,
) -> PyResult<T> {
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    py.detach(|| runtime.block_on(work)).map_err(to_py_err)
}

/// Awaitables whose work has not finished handing its answer to Python.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Their tasks, aborted when the interpreter exits.
static TASKS: Mutex<BTreeMap<u64, tokio::task::AbortHandle>> = Mutex::new(BTreeMap::new());
static NEXT_TASK: AtomicU64 = AtomicU64::new(0);

/// Counts one awaitable in flight until dropped: after its answer reached Python, or when its
/// task was aborted.
struct InFlight(u64);

impl Drop for InFlight {
    fn drop(&mut self) {
        TASKS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `work` as an awaitable of the running asyncio loop: an asyncio future that a task of the
/// shared runtime completes through `loop.call_soon_threadsafe`. Cancelling the future aborts
/// the task (a request in flight is dropped, as a Rust future's would be). Every Python object
/// the task holds is released while it holds the interpreter, before the task counts as done,
/// so [`quiesce`] can make sure no runtime thread touches Python once the interpreter starts
/// finalizing.
fn awaitable<'py, T>(
    py: Python<'py>,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let complete = py.import("onmemos._native")?.getattr("_complete")?.unbind();
    let (event_loop, handle) = (event_loop.unbind(), future.clone().unbind());
    let id = NEXT_TASK.fetch_add(1, Ordering::SeqCst);
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let in_flight = InFlight(id);
    // Held until the task is registered, so it cannot end (and unregister) before that.
    let mut tasks = TASKS.lock().unwrap_or_else(|e| e.into_inner());
    let task = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let _in_flight = in_flight;
        let result = work.await;
        Python::attach(move |py| {
            let (ok, value) = match result.map_err(to_py_err).and_then(|v| {
                v.into_pyobject(py)
                    .map(|v| v.into_any().unbind())
                    .map_err(Into::into)
            }) {
                Ok(value) => (true, value),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // A closed loop (the program moved on) cannot take the answer: nothing to do.
            let _ =
                event_loop.call_method1(py, "call_soon_threadsafe", (complete, handle, ok, value));
            // `event_loop`, `complete` and `handle` are released here, with the interpreter held.
        });
    });
    tasks.insert(id, task.abort_handle());
    drop(tasks);
    future.call_method1("add_done_callback", (AbortIfCancelled(id),))?;
    Ok(future)
}

/// Done callback of an awaitable's future: when it was cancelled, aborts its task.
#[pyclass(frozen, module = "onmemos._native")]
struct AbortIfCancelled(u64);

#[pymethods]
impl AbortIfCancelled {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()?
            && let Some(task) = TASKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.0)
        {
            task.abort();
        }
        Ok(())
    }
}

/// Sets `future`'s result (`ok`) or exception, unless it was cancelled meanwhile; runs on the
/// future's loop.
#[pyfunction]
fn _complete(future: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    future.call_method1(if ok { "set_result" } else { "set_exception" }, (value,))?;
    Ok(())
}

/// How many awaitables have work running or an answer still to hand over (a diagnostic).
#[pyfunction]
fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Called as the interpreter exits (`atexit`): aborts the tasks of awaitables nobody will
/// await any more and waits (at most `timeout` seconds, the interpreter released) until no
/// task of the runtime holds a Python object, so none touches Python while it finalizes.
#[pyfunction]
#[pyo3(signature = (timeout=5.0))]
fn quiesce(py: Python<'_>, timeout: f64) {
    let tasks: Vec<_> = std::mem::take(&mut *TASKS.lock().unwrap_or_else(|e| e.into_inner()))
        .into_values()
        .collect();
    for task in tasks {
        task.abort();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
    py.detach(|| {
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// One client of one server, shared by the Python `Client` and `AsyncClient`.
#[pyclass(frozen, module = "onmemos._native")]
pub struct NativeClient {
    client: Client,
}

#[pymethods]
impl NativeClient {
    /// A client of `base_url` with `api_key`, or (`from_env`) of `ONMEMOS_URL` and
    /// `ONMEMOS_API_KEY` from the environment or a `.env` file; `retry` is a JSON object of
    /// [`RetrySettings`].
    #[new]
    #[pyo3(signature = (base_url=None, api_key=None, timeout_secs=None, retry=None, from_env=false))]
    fn new(
        base_url: Option<String>,
        api_key: Option<String>,
        timeout_secs: Option<f64>,
        retry: Option<&str>,
        from_env: bool,
    ) -> PyResult<Self> {
        let configure = || -> Result<Client> {
            let mut builder = if from_env {
                crate::ClientBuilder::from_env()?
            } else {
                let mut builder = Client::builder();
                if let Some(url) = base_url {
                    builder = builder.base_url(url);
                }
                if let Some(key) = api_key {
                    builder = builder.api_key(key);
                }
                builder
            };
            if let Some(secs) = timeout_secs {
                let timeout = seconds("timeout", secs)?;
                if timeout.is_zero() {
                    return Err(Error::new(
                        ErrorKind::Configuration,
                        "timeout must be more than zero seconds",
                    ));
                }
                builder = builder.request_timeout(RequestTimeout(timeout));
            }
            if let Some(retry) = retry {
                let settings: RetrySettings = serde_json::from_str(retry).map_err(|e| {
                    Error::new(ErrorKind::Configuration, format!("retry policy: {e}"))
                })?;
                builder = builder.retry_policy(settings.policy()?);
            }
            builder.build()
        };
        Ok(Self {
            client: configure().map_err(to_py_err)?,
        })
    }

    /// The server's base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.client.base_url().to_owned()
    }

    /// Runs `op` with `args` (a JSON object), `data` (bytes to upload) and `progress` (called
    /// with bytes done and the total, for transfers), blocking this thread, not the
    /// interpreter.
    #[pyo3(signature = (op, args, data=None, progress=None, started=None))]
    fn call(
        &self,
        py: Python<'_>,
        op: &str,
        args: &str,
        data: Option<Vec<u8>>,
        progress: Option<Py<PyAny>>,
        started: Option<Py<PyAny>>,
    ) -> PyResult<Answer> {
        let input = Input::new(data, progress, started);
        blocking(py, call(&self.client, op, args, input))
    }

    /// Like `call`, as an awaitable of the running asyncio loop.
    #[pyo3(signature = (op, args, data=None, progress=None, started=None))]
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        op: String,
        args: String,
        data: Option<Vec<u8>>,
        progress: Option<Py<PyAny>>,
        started: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        let input = Input::new(data, progress, started);
        awaitable(py, async move { call(&client, &op, &args, input).await })
    }

    /// Opens a stream named `op` (`sessions.exec_stream`, `sessions.follow_events`, or a
    /// list's `…list_all`), whose items are JSON texts, read with `NativeStream.next`.
    fn stream(&self, py: Python<'_>, op: &str, args: &str) -> PyResult<NativeStream> {
        blocking(py, open_stream(&self.client, op, args)).map(NativeStream::new)
    }

    /// Like `stream`, as an awaitable.
    fn stream_async<'py>(
        &self,
        py: Python<'py>,
        op: String,
        args: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        awaitable(py, async move {
            open_stream(&client, &op, &args)
                .await
                .map(NativeStream::new)
        })
    }

    /// Opens the terminal of session `id` (`rows`×`cols`), reconnecting a lost connection for
    /// up to `reconnect_secs`.
    #[pyo3(signature = (id, rows=24, cols=80, reconnect_secs=60.0))]
    fn shell(
        &self,
        py: Python<'_>,
        id: &str,
        rows: u16,
        cols: u16,
        reconnect_secs: f64,
    ) -> PyResult<NativeShell> {
        let (id, options) = shell_target(id, rows, cols, reconnect_secs).map_err(to_py_err)?;
        blocking(py, self.client.shell_with(id, options)).map(NativeShell::new)
    }

    /// Like `shell`, as an awaitable.
    #[pyo3(signature = (id, rows=24, cols=80, reconnect_secs=60.0))]
    fn shell_async<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        rows: u16,
        cols: u16,
        reconnect_secs: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (id, options) = shell_target(id, rows, cols, reconnect_secs).map_err(to_py_err)?;
        let client = self.client.clone();
        awaitable(py, async move {
            client.shell_with(id, options).await.map(NativeShell::new)
        })
    }
}

/// `name` seconds as a duration: finite and not negative.
fn seconds(name: &str, secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        Error::new(
            ErrorKind::Configuration,
            format!("{name} must be a finite number of seconds, zero or more, got {secs}"),
        )
    })
}

/// A [`RetryPolicy`] from Python (`onmemos.RetryPolicy`); unset fields keep the defaults.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySettings {
    max_attempts: Option<u32>,
    initial_delay: Option<f64>,
    max_delay: Option<f64>,
    total_budget: Option<f64>,
    jitter: Option<bool>,
}

impl RetrySettings {
    fn policy(&self) -> Result<RetryPolicy> {
        let mut policy = RetryPolicy::default();
        if let Some(n) = self.max_attempts {
            policy = policy.with_max_attempts(n);
        }
        if let Some(s) = self.initial_delay {
            policy = policy.with_initial_delay(seconds("initial_delay", s)?);
        }
        if let Some(s) = self.max_delay {
            policy = policy.with_max_delay(seconds("max_delay", s)?);
        }
        if let Some(s) = self.total_budget {
            policy = policy.with_total_budget(seconds("total_budget", s)?);
        }
        if self.jitter == Some(false) {
            policy = policy.without_jitter();
        }
        Ok(policy)
    }
}

/// What an operation takes besides its JSON arguments.
struct Input {
    data: Option<Vec<u8>>,
    progress: Option<crate::Progress>,
    /// Told the upload id of a resumable upload before its parts are sent.
    started: Option<Py<PyAny>>,
}

impl Input {
    fn new(data: Option<Vec<u8>>, progress: Option<Py<PyAny>>, started: Option<Py<PyAny>>) -> Self {
        Self {
            data,
            progress: progress.map(progress_of),
            started,
        }
    }
}

/// Calls a Python callback from the runtime. Its exceptions are reported (as unraisable) and
/// do not stop the work that called it.
fn call_back<'py, A: pyo3::call::PyCallArgs<'py>>(py: Python<'py>, callback: &Py<PyAny>, args: A) {
    if let Err(e) = callback.call1(py, args) {
        e.write_unraisable(py, Some(callback.bind(py)));
    }
}

/// A Python callable `progress(done, total)` as the client's progress callback.
fn progress_of(callback: Py<PyAny>) -> crate::Progress {
    std::sync::Arc::new(move |done: u64, total: Option<u64>| {
        Python::attach(|py| call_back(py, &callback, (done, total)));
    })
}

/// The session and options of a shell to open.
fn shell_target(
    id: &str,
    rows: u16,
    cols: u16,
    reconnect_secs: f64,
) -> Result<(onmemos_types::id::SessionId, crate::ShellOptions)> {
    let id = id.parse().map_err(|_| {
        Error::new(ErrorKind::Validation, format!("{id:?} is not a session id")).with_field("id")
    })?;
    let reconnect_within = Duration::try_from_secs_f64(reconnect_secs).map_err(|_| {
        Error::new(
            ErrorKind::Validation,
            format!("reconnect_secs must be zero or more seconds, got {reconnect_secs}"),
        )
        .with_field("reconnect_secs")
    })?;
    let options = crate::ShellOptions {
        rows,
        cols,
        reconnect_within,
    };
    Ok((id, options))
}

/// Items as JSON texts.
type JsonItems = futures::stream::BoxStream<'static, Result<String>>;

fn as_json<T: Serialize + Send + 'static>(items: crate::Items<T>) -> JsonItems {
    use futures::{StreamExt, TryStreamExt};
    items
        .and_then(|item| async move {
            serde_json::to_string(&item)
                .map_err(|e| Error::new(ErrorKind::Decode, format!("encoding an item: {e}")))
        })
        .boxed()
}

/// Opens the stream `op` names.
async fn open_stream(client: &Client, op: &str, args: &str) -> Result<JsonItems> {
    let args = parse_args(args)?;
    let a = &args;
    Ok(match op {
        "sessions.exec_stream" => as_json(
            client
                .sessions()
                .exec_stream(arg(a, "id")?, &arg(a, "command")?)
                .await?,
        ),
        "sessions.follow_events" => as_json(
            client
                .sessions()
                .follow_events(arg(a, "id")?, arg(a, "after")?)
                .await?,
        ),
        "sessions.events_all" => as_json(
            client
                .sessions()
                .events_all(arg(a, "id")?, arg(a, "params")?),
        ),
        "sessions.list_all" => as_json(client.sessions().list_all(arg(a, "params")?)),
        "workspaces.list_all" => as_json(client.workspaces().list_all(arg(a, "params")?)),
        "templates.list_all" => as_json(client.templates().list_all(arg(a, "params")?)),
        "api_keys.list_all" => as_json(client.api_keys().list_all(arg(a, "params")?)),
        "users.list_all" => as_json(client.users().list_all(arg(a, "params")?)),
        "credits.transfers_all" => as_json(client.credits().transfers_all(arg(a, "params")?)),
        "storage.list_all" => as_json(
            client
                .storage()
                .list_all(arg(a, "workspace")?, arg(a, "params")?),
        ),
        other => {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("no stream named {other:?}"),
            ));
        }
    })
}

/// A stream of JSON texts: `next()` blocks for the next one, `next_async()` awaits it; both
/// give `None` at the end.
#[pyclass(frozen, module = "onmemos._native")]
pub struct NativeStream {
    items: std::sync::Arc<tokio::sync::Mutex<JsonItems>>,
}

impl NativeStream {
    fn new(items: JsonItems) -> Self {
        Self {
            items: std::sync::Arc::new(tokio::sync::Mutex::new(items)),
        }
    }
}

async fn next_item(items: &tokio::sync::Mutex<JsonItems>) -> Result<Option<String>> {
    use futures::TryStreamExt;
    items.lock().await.try_next().await
}

#[pymethods]
impl NativeStream {
    /// The next item, or `None` at the end.
    fn next(&self, py: Python<'_>) -> PyResult<Option<String>> {
        blocking(py, next_item(&self.items))
    }

    /// Like `next`, as an awaitable.
    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let items = self.items.clone();
        awaitable(py, async move { next_item(&items).await })
    }
}

/// An open terminal: events are `("output", bytes)`, `("control", json_text)`,
/// `("reconnected", attempts)`, or `None` once it ended.
#[pyclass(frozen, module = "onmemos._native")]
pub struct NativeShell {
    shell: std::sync::Arc<tokio::sync::Mutex<crate::Shell>>,
}

impl NativeShell {
    fn new(shell: crate::Shell) -> Self {
        Self {
            shell: std::sync::Arc::new(tokio::sync::Mutex::new(shell)),
        }
    }
}

/// A shell event as a Python tuple.
enum Event {
    Output(bytes::Bytes),
    Control(String),
    Reconnected(u32),
}

impl<'py> IntoPyObject<'py> for Event {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let event = match self {
            Event::Output(bytes) => {
                ("output", PyBytes::new(py, &bytes).into_any()).into_pyobject(py)?
            }
            Event::Control(text) => ("control", text).into_pyobject(py)?,
            Event::Reconnected(attempts) => ("reconnected", attempts).into_pyobject(py)?,
        };
        Ok(event.into_any())
    }
}

async fn shell_next(shell: &tokio::sync::Mutex<crate::Shell>) -> Result<Option<Event>> {
    let Some(event) = shell.lock().await.next().await else {
        return Ok(None);
    };
    Ok(Some(match event? {
        crate::ShellEvent::Output(bytes) => Event::Output(bytes),
        crate::ShellEvent::Control(frame) => Event::Control(
            serde_json::to_string(&frame)
                .map_err(|e| Error::new(ErrorKind::Decode, format!("a control frame: {e}")))?,
        ),
        crate::ShellEvent::Reconnected { attempts } => Event::Reconnected(attempts),
    }))
}

#[pymethods]
impl NativeShell {
    /// Sends keyboard input.
    fn send(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        blocking(py, async { self.shell.lock().await.send(&data).await })
    }

    /// Resizes the terminal.
    fn resize(&self, py: Python<'_>, rows: u16, cols: u16) -> PyResult<()> {
        blocking(py, async {
            self.shell.lock().await.resize(rows, cols).await
        })
    }

    /// The next event, blocking; `None` once the terminal ended.
    fn next(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        blocking(py, shell_next(&self.shell))
    }

    /// Like `send`, as an awaitable.
    fn send_async<'py>(&self, py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let shell = self.shell.clone();
        awaitable(py, async move { shell.lock().await.send(&data).await })
    }

    /// Like `resize`, as an awaitable.
    fn resize_async<'py>(
        &self,
        py: Python<'py>,
        rows: u16,
        cols: u16,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shell = self.shell.clone();
        awaitable(
            py,
            async move { shell.lock().await.resize(rows, cols).await },
        )
    }

    /// Like `next`, as an awaitable.
    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shell = self.shell.clone();
        awaitable(py, async move { shell_next(&shell).await })
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
    onmemos_types::api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

/// The native module `onmemos._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_class::<NativeStream>()?;
    m.add_class::<NativeShell>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(error_from_response, m)?)?;
    m.add_function(wrap_pyfunction!(wire_codes, m)?)?;
    m.add_function(wrap_pyfunction!(_complete, m)?)?;
    m.add_function(wrap_pyfunction!(quiesce, m)?)?;
    m.add_function(wrap_pyfunction!(in_flight, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The JSON object of an operation's arguments.
fn parse_args(args: &str) -> Result<Value> {
    serde_json::from_str(args).map_err(|e| {
        Error::new(
            ErrorKind::Validation,
            format!("the arguments are not JSON: {e}"),
        )
    })
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
async fn call(client: &Client, op: &str, args: &str, input: Input) -> Result<Answer> {
    let Input {
        data,
        progress,
        started,
    } = input;
    let args = parse_args(args)?;
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
                    progress,
                )
                .await?,
        ),
        "storage.upload_file_resumable" => json(
            &client
                .storage()
                .upload_file_resumable(
                    arg(a, "workspace")?,
                    &arg::<String>(a, "path")?,
                    &arg::<PathBuf>(a, "file")?,
                    arg(a, "resume")?,
                    |upload| {
                        if let Some(started) = started {
                            let id = upload.id.to_string();
                            Python::attach(|py| call_back(py, &started, (id,)));
                        }
                    },
                    progress,
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
                    progress,
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
