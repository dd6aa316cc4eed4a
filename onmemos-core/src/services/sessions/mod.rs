//! Sessions: create (quote → hold → start), stop, exec, terminals, events. Their billing is
//! [`billing`]'s, which the monitor schedules.
//!
//! Billing (SPEC §4): a session's credits are reserved one window ahead by a hold. Tick `k`
//! posts what the time used since the previous tick cost against hold `k - 1` and places hold
//! `k`; a stop posts the last part. Cost is `cost_of(rate, elapsed)` cumulative, so it is exact
//! to the micro-credit however the time was split; transfer ids are `<session>.hold.<k>` and
//! `<session>.settle.<k>`, so a repeated step is a replay in the ledger, never a second charge.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_core::Stream;

use crate::api::{
    CreateSession, EventListParams, ExecCommand, ExecOutput, ExecStreamLine, ListParams,
    OutputChunks, OutputEncoding, Page, SessionListParams,
};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::id::{SessionId, TemplateId};
use crate::model::{
    Scope, Session, SessionEvent, SessionEventKind, SessionLimits, SessionRecord, SessionStatus,
    StopReason, Template, cost_of,
};
use crate::ports::SessionFilter;
use crate::ports::compute::{
    ComputeProvider, ExecEvent, ExecRequest, ExecStream, FilesMount, PtyConnection, PtySize,
    SessionSpec, WorkspaceSpec,
};
use crate::principal::Principal;
use crate::validation::validate;

pub(crate) mod billing;

use billing::{SessionBilling, next_check};

/// Activity is written to the database at most this often per session.
const TOUCH_INTERVAL_MS: i64 = 1_000;
/// The longest output `exec` collects into one response, per stream.
const MAX_EXEC_OUTPUT: usize = crate::api::MAX_EXEC_OUTPUT_BYTES;

/// Sessions of the calling user.
#[derive(Debug)]
pub struct SessionService<'e> {
    engine: &'e Engine,
}

impl<'e> SessionService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// The billing steps of this engine's sessions.
    fn billing(&self) -> SessionBilling<'e> {
        SessionBilling::new(self.engine)
    }

    fn compute(&self) -> Result<&'e std::sync::Arc<dyn ComputeProvider>> {
        self.engine
            .compute()
            .ok_or_else(|| Error::unavailable("this server runs no compute: sessions are off"))
    }

    /// Whether this server can reach the compute of `record`: always, unless the compute keeps
    /// sessions on the node that started them and that is another node.
    fn reaches(&self, record: &SessionRecord) -> bool {
        record.node == self.engine.node()
            || self
                .engine
                .compute()
                .is_some_and(|c| !c.capabilities().node_local)
    }

    /// Starts a session: validate → quote → hold credits → start compute → `running`. A failed
    /// step undoes the earlier ones and leaves the session `failed` with the reason.
    pub async fn create(&self, caller: &Principal, request: CreateSession) -> Result<Session> {
        caller.require(Scope::SessionsWrite)?;
        validate(&request)?;
        let compute = self.compute()?;
        let db = self.engine.database();
        let workspace = db
            .workspaces()
            .get(caller.user_id(), request.workspace_id)
            .await?
            .ok_or_else(|| {
                Error::not_found("workspace not found")
                    .with_context("field", "workspace_id")
                    .with_context("workspace", request.workspace_id.to_string())
            })?;
        let template = self.resolve_template(caller, &request.template).await?;
        let limits = self.limits_for(&template, &request)?;
        if request.placement == crate::model::Placement::Spot && !compute.capabilities().spot {
            return Err(Error::invalid(
                "placement",
                format!(
                    "spot placement is not available on {} compute",
                    compute.capabilities().name
                ),
            ));
        }
        let rate = self
            .engine
            .config()
            .pricing
            .hourly_rate(&template.resources, request.placement);
        // A cost limit that one billing step would pass lets nothing run that is not free.
        let check_ms =
            i64::try_from(self.engine.config().sessions.check_interval_ms).unwrap_or(i64::MAX);
        let step = cost_of(rate, check_ms);
        if limits.max_cost_micros < step {
            return Err(Error::invalid(
                "limits.max_cost_micros",
                format!(
                    "limits.max_cost_micros must be at least {step} micro-credits: one billing \
                     step ({check_ms} ms) at this session's rate of {rate} micro-credits per hour \
                     (the limit is {} here, from the request or the template)",
                    limits.max_cost_micros
                ),
            ));
        }
        let now = self.engine.clock().now();
        let session = Session {
            id: SessionId::new(),
            workspace_id: workspace.id,
            owner_id: caller.user_id(),
            template_id: template.id,
            status: SessionStatus::Starting,
            limits,
            placement: request.placement,
            resources: template.resources,
            rate_micros_per_hour: rate,
            cost_micros: 0,
            stop_reason: None,
            failure: None,
            created_at: now,
            started_at: None,
            stopped_at: None,
            last_activity_at: now,
        };
        let mut record = SessionRecord {
            session,
            node: self.engine.node().to_owned(),
            version: 0,
            tick: 0,
            hold: None,
            billed_ms: 0,
            covered_until: None,
            next_check_at: None,
            warned: 0,
        };
        db.sessions().insert(&record).await?;
        let id = record.session.id;
        self.event(
            id,
            SessionEventKind::Created {
                rate_micros_per_hour: rate,
            },
            format!(
                "created from template {} at {rate} micro-credits per hour",
                template.name
            ),
        )
        .await;

        match self.billing().place_hold(&record.session, 0, now).await {
            Ok(hold) => record.hold = hold,
            Err(e) => {
                self.billing().fail(record, &e).await;
                return Err(e.with_context("session", id.to_string()));
            }
        }

        let mut env: BTreeMap<String, String> = template.env.clone();
        env.extend(workspace.env.clone());
        env.extend(request.env);
        let spec = SessionSpec {
            session: id,
            workspace: workspace.id,
            template: Some(template.id),
            image: template.image.clone(),
            resources: template.resources,
            env,
            placement: request.placement,
            files: self.files_mount(compute.as_ref(), workspace.id),
            max_duration: Some(std::time::Duration::from_secs(limits.max_duration_secs)),
        };
        let started = async {
            compute
                .provision_workspace(&WorkspaceSpec {
                    workspace: workspace.id,
                    owner: workspace.owner_id,
                    name: workspace.name.clone(),
                })
                .await?;
            compute.start_session(&spec).await
        }
        .await;
        if let Err(e) = started {
            // Whatever part of it started goes.
            if let Err(stop) = compute.stop_session(id).await {
                tracing::warn!(session = %id, error = %stop, "could not tear down a failed start");
            }
            self.billing().fail(record, &e).await;
            return Err(e.with_context("session", id.to_string()));
        }

        let started_at = self.engine.clock().now();
        let mut next = record.clone();
        next.version += 1;
        next.session.status = SessionStatus::Running;
        next.session.started_at = Some(started_at);
        next.session.last_activity_at = started_at;
        let settings = &self.engine.config().sessions;
        next.covered_until = Some(started_at + settings.billing_window());
        next.next_check_at = Some(next_check(
            &next.session,
            started_at,
            started_at,
            settings.check_interval(),
        ));
        if !db.sessions().update(&next).await? {
            let _ = compute.stop_session(id).await;
            return Err(Error::conflict("the session changed while it was starting"));
        }
        self.event(
            id,
            SessionEventKind::Started,
            "compute is up; billing started".into(),
        )
        .await;
        // Its first deadline may come before the monitor's next pass.
        self.engine.shared().monitor_wake.notify_one();
        tracing::info!(session = %id, template = %template.name, rate, "session started");
        Ok(next.session)
    }

    /// How a session of `workspace` on `compute` sees the workspace's stored files: a compute
    /// on this machine sees local storage's directory; another mounts the store's bucket, or —
    /// with local storage — the directory as a path on its node (a single-node cluster).
    fn files_mount(
        &self,
        compute: &dyn ComputeProvider,
        workspace: crate::id::WorkspaceId,
    ) -> Option<FilesMount> {
        let storage = self.engine.storage_provider()?;
        let prefix = crate::services::storage::workspace_prefix(workspace);
        let dir = storage.local_dir(&prefix).map(FilesMount::Dir);
        if compute.capabilities().node_local {
            dir
        } else {
            storage.bucket(&prefix).map(FilesMount::Bucket).or(dir)
        }
    }

    pub(crate) async fn resolve_template(
        &self,
        caller: &Principal,
        name_or_id: &str,
    ) -> Result<Template> {
        let repo = self.engine.database().templates();
        let found = match name_or_id.parse::<TemplateId>() {
            Ok(id) => repo.get_visible(caller.user_id(), id).await?,
            Err(_) => {
                repo.find_visible_by_name(caller.user_id(), name_or_id)
                    .await?
            }
        };
        found.ok_or_else(|| {
            Error::invalid(
                "template",
                format!("unknown template {name_or_id:?}: no built-in or template of yours has that name or id"),
            )
        })
    }

    fn limits_for(&self, template: &Template, request: &CreateSession) -> Result<SessionLimits> {
        let d = template.default_limits;
        let o = request.limits;
        let limits = SessionLimits {
            max_duration_secs: o.max_duration_secs.unwrap_or(d.max_duration_secs),
            max_cost_micros: o.max_cost_micros.unwrap_or(d.max_cost_micros),
            idle_timeout_secs: o.idle_timeout_secs.unwrap_or(d.idle_timeout_secs),
        };
        validate(&limits).map_err(|e| {
            let field = format!("limits.{}", e.field().unwrap_or_default());
            Error::invalid(field.clone(), format!("{field}: {}", e.message()))
        })?;
        limits.check_within(&self.engine.config().max_limits, "limits")?;
        Ok(limits)
    }

    /// One of the caller's sessions. Reading is not activity: a dashboard that polls a
    /// session must not keep it from its idle timeout.
    pub async fn get(&self, caller: &Principal, id: SessionId) -> Result<Session> {
        caller.require(Scope::SessionsRead)?;
        self.owned(caller, id).await
    }

    async fn owned(&self, caller: &Principal, id: SessionId) -> Result<Session> {
        self.engine
            .database()
            .sessions()
            .get(caller.user_id(), id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A page of the caller's sessions.
    pub async fn list(
        &self,
        caller: &Principal,
        params: &SessionListParams,
    ) -> Result<Page<Session>> {
        caller.require(Scope::SessionsRead)?;
        let page = ListParams {
            limit: params.limit,
            cursor: params.cursor.clone(),
        }
        .to_request()?;
        let filter = SessionFilter {
            workspace: params.workspace_id,
            status: params.status,
            template: params.template_id,
        };
        self.engine
            .database()
            .sessions()
            .list(caller.user_id(), &filter, page)
            .await
    }

    /// Stops one of the caller's sessions (reason `user`), charging it up to now. Stopping a
    /// session that has already ended returns it as it is.
    pub async fn stop(&self, caller: &Principal, id: SessionId) -> Result<Session> {
        caller.require(Scope::SessionsWrite)?;
        self.owned(caller, id).await?;
        for _ in 0..5 {
            let record = self
                .engine
                .database()
                .sessions()
                .record(id)
                .await?
                .ok_or_else(|| not_found(id))?;
            match record.session.status {
                SessionStatus::Stopped | SessionStatus::Failed => return Ok(record.session),
                SessionStatus::Running | SessionStatus::Stopping => {}
                SessionStatus::Pending | SessionStatus::Starting => {
                    return Err(Error::conflict(
                        "the session is still starting; stop it once it runs",
                    ));
                }
            }
            let now = self.engine.clock().now();
            match self
                .billing()
                .finish(record, StopReason::User, now, now)
                .await
            {
                Ok(done) => return Ok(done.session),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("the session kept changing; try again").set_retryable(true))
    }

    /// Deletes one of the caller's sessions that has ended, with its events.
    pub async fn delete(&self, caller: &Principal, id: SessionId) -> Result<()> {
        caller.require(Scope::SessionsWrite)?;
        let session = self.owned(caller, id).await?;
        if !session.is_finished() {
            return Err(Error::conflict(format!(
                "session {id} is {}: stop it before deleting it",
                session.status.as_str()
            )));
        }
        if self
            .engine
            .database()
            .sessions()
            .delete_finished(caller.user_id(), id)
            .await?
        {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// A running session of the caller whose compute this server can reach.
    async fn running_here(&self, caller: &Principal, id: SessionId) -> Result<Session> {
        self.compute()?;
        let record = self
            .engine
            .database()
            .sessions()
            .record(id)
            .await?
            .filter(|r| r.session.owner_id == caller.user_id())
            .ok_or_else(|| not_found(id))?;
        if record.session.status != SessionStatus::Running {
            return Err(Error::conflict(format!(
                "session {id} is {}, not running",
                record.session.status.as_str()
            ))
            .with_context("status", record.session.status.as_str()));
        }
        if !self.reaches(&record) {
            return Err(Error::conflict(format!(
                "session {id} runs on server node {:?}; send this request there",
                record.node
            )));
        }
        Ok(record.session)
    }

    /// Runs a command in one of the caller's running sessions, streaming its output.
    pub async fn exec_stream(
        &self,
        caller: &Principal,
        id: SessionId,
        command: ExecCommand,
    ) -> Result<ExecStream> {
        caller.require(Scope::SessionsWrite)?;
        validate(&command)?;
        self.running_here(caller, id).await?;
        self.touch(id).await;
        let request = ExecRequest {
            timeout: command.timeout(),
            command: command.command,
            env: command.env,
            stdin: command.stdin.map(bytes::Bytes::from),
        };
        self.compute()?.exec(id, request).await
    }

    /// Runs a command and streams its output as [`ExecStreamLine`]s, byte-exact (characters
    /// never cut across lines; bytes that are not UTF-8 as base64), ending with its exit line.
    pub async fn exec_lines(
        &self,
        caller: &Principal,
        id: SessionId,
        command: ExecCommand,
    ) -> Result<impl Stream<Item = ExecStreamLine> + Send + 'static> {
        let events = self.exec_stream(caller, id, command).await?;
        Ok(exec_lines(events))
    }

    /// Runs a command and collects its output (up to [`crate::api::MAX_EXEC_OUTPUT_BYTES`] per
    /// stream; `truncated` says when more was cut).
    pub async fn exec(
        &self,
        caller: &Principal,
        id: SessionId,
        command: ExecCommand,
    ) -> Result<ExecOutput> {
        let timeout = command.timeout();
        let began = Instant::now();
        let mut stream = self.exec_stream(caller, id, command).await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut exit_code = None;
        let mut truncated = false;
        while let Some(event) = next(&mut stream).await {
            match event? {
                ExecEvent::Stdout(b) => truncated |= append_capped(&mut stdout, &b),
                ExecEvent::Stderr(b) => truncated |= append_capped(&mut stderr, &b),
                ExecEvent::Exit(code) => {
                    exit_code = code;
                    break;
                }
            }
        }
        self.touch(id).await;
        let (stdout, stdout_encoding) = OutputEncoding::encode(&stdout);
        let (stderr, stderr_encoding) = OutputEncoding::encode(&stderr);
        Ok(ExecOutput {
            stdout,
            stdout_encoding,
            stderr,
            stderr_encoding,
            exit_code,
            timed_out: exit_code.is_none() && began.elapsed() >= timeout,
            truncated,
        })
    }

    /// Attaches to the terminal of one of the caller's running sessions.
    pub async fn attach(
        &self,
        caller: &Principal,
        id: SessionId,
        size: PtySize,
    ) -> Result<(Session, Box<dyn PtyConnection>)> {
        let session = self.attachable(caller, id, size).await?;
        let pty = self.compute()?.attach_pty(id, size).await?;
        Ok((session, pty))
    }

    /// Checks that the caller may use the terminal of session `id` now (theirs, running, on
    /// this server's compute) at `size`, counting it as activity.
    pub async fn attachable(
        &self,
        caller: &Principal,
        id: SessionId,
        size: PtySize,
    ) -> Result<Session> {
        caller.require(Scope::SessionsWrite)?;
        let session = self.running_here(caller, id).await?;
        if !(1..=1000).contains(&size.rows) || !(1..=1000).contains(&size.cols) {
            return Err(Error::invalid(
                "size",
                "terminal rows and columns must be between 1 and 1000",
            ));
        }
        self.touch(id).await;
        Ok(session)
    }

    /// Events of one of the caller's sessions, oldest first.
    pub async fn events(
        &self,
        caller: &Principal,
        id: SessionId,
        params: &EventListParams,
    ) -> Result<Vec<SessionEvent>> {
        caller.require(Scope::SessionsRead)?;
        let limit = params.limit();
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "limit must be between 1 and 1000"));
        }
        self.owned(caller, id).await?;
        self.engine
            .database()
            .sessions()
            .events(id, params.after.unwrap_or(0), limit)
            .await
    }

    /// Events of every session as they happen in this process (filter by `session_id`).
    /// Events made by other replicas are in the database ([`Self::events`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<SessionEvent> {
        self.engine.shared().bus.subscribe()
    }

    /// Records activity on a session: kept in memory (at most once a second per session)
    /// and written with others in one batch, off the caller's path, at most once a second.
    /// The monitor writes what is pending before it looks at deadlines.
    pub async fn touch(&self, id: SessionId) {
        let now = self.engine.clock().now();
        let activity = &self.engine.shared().activity;
        if activity
            .latest(id)
            .is_some_and(|last| (now - last).num_milliseconds() < TOUCH_INTERVAL_MS)
        {
            return;
        }
        activity.record(id, now);
        self.write_activity(false);
    }

    /// Writes the recorded activity in a task of its own when a batch is due (or now, with
    /// `force`).
    fn write_activity(&self, force: bool) {
        let Some(batch) = self.engine.shared().activity.take_due(force) else {
            return;
        };
        let engine = self.engine.clone();
        tokio::spawn(async move {
            write_activity_batch(&engine, batch).await;
        });
    }

    /// Writes the recorded activity now and waits for it (the monitor, before it reads
    /// deadlines).
    pub(crate) async fn flush_activity(&self) {
        let activity = &self.engine.shared().activity;
        // A write under way (taken by a request) is waited for: what it carries must be in
        // before deadlines are read.
        for _ in 0..1000 {
            if let Some(batch) = activity.take_due(true) {
                write_activity_batch(self.engine, batch).await;
            } else if activity.writing() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            } else {
                return;
            }
        }
    }

    /// Stores `events` in one write and tells this process's subscribers. Events that cannot
    /// be stored are logged: they never undo the steps they report.
    pub(crate) async fn record_events(&self, events: Vec<crate::ports::NewSessionEvent>) {
        if events.is_empty() {
            return;
        }
        match self
            .engine
            .database()
            .sessions()
            .append_events(&events)
            .await
        {
            Ok(stored) => self.publish(stored),
            Err(e) => {
                tracing::warn!(events = events.len(), error = %e, "could not store session events")
            }
        }
    }

    /// Tells this process's subscribers of events as stored.
    pub(crate) fn publish(&self, stored: Vec<crate::model::SessionEvent>) {
        for event in stored {
            // No subscriber is fine.
            let _ = self.engine.shared().bus.send(event);
        }
    }

    /// Appends an event and tells this process's subscribers (see [`Self::record_events`]).
    pub(crate) async fn event(&self, id: SessionId, kind: SessionEventKind, message: String) {
        let at = self.engine.clock().now();
        self.record_events(vec![crate::ports::NewSessionEvent {
            session: id,
            at,
            kind,
            message,
        }])
        .await;
    }
}

/// Writes a batch of session activity; a failure is logged (the next activity is recorded
/// again).
async fn write_activity_batch(
    engine: &Engine,
    batch: Vec<(SessionId, chrono::DateTime<chrono::Utc>)>,
) {
    if let Err(e) = engine.database().sessions().touch_many(&batch).await {
        tracing::warn!(sessions = batch.len(), error = %e, "could not record session activity");
    }
    engine.shared().activity.write_done();
}

/// The lines of an exec's events: output through one [`OutputChunks`] per stream, flushed
/// before the exit line.
fn exec_lines(events: ExecStream) -> impl Stream<Item = ExecStreamLine> + Send + 'static {
    use futures_util::StreamExt as _;
    let state = (OutputChunks::default(), OutputChunks::default());
    events
        .scan(state, |(out, err), event| {
            let lines: Vec<ExecStreamLine> = match event {
                Ok(ExecEvent::Stdout(b)) => out
                    .push(&b)
                    .map(|(data, encoding)| ExecStreamLine::Stdout { data, encoding })
                    .into_iter()
                    .collect(),
                Ok(ExecEvent::Stderr(b)) => err
                    .push(&b)
                    .map(|(data, encoding)| ExecStreamLine::Stderr { data, encoding })
                    .into_iter()
                    .collect(),
                Ok(ExecEvent::Exit(code)) => {
                    let mut lines: Vec<ExecStreamLine> = Vec::new();
                    if let Some((data, encoding)) = out.finish() {
                        lines.push(ExecStreamLine::Stdout { data, encoding });
                    }
                    if let Some((data, encoding)) = err.finish() {
                        lines.push(ExecStreamLine::Stderr { data, encoding });
                    }
                    lines.push(ExecStreamLine::Exit { exit_code: code });
                    lines
                }
                Err(e) => vec![ExecStreamLine::Error {
                    message: e.message().to_owned(),
                }],
            };
            std::future::ready(Some(futures_util::stream::iter(lines)))
        })
        .flatten()
}

fn not_found(id: SessionId) -> Error {
    Error::not_found("session not found").with_context("session", id.to_string())
}

/// Appends what fits under [`MAX_EXEC_OUTPUT`]; whether anything was cut.
fn append_capped(buf: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let room = MAX_EXEC_OUTPUT.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    bytes.len() > room
}

/// The next item of a stream.
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}
