//! Typed methods, grouped by resource.

use reqwest::Method;

use onmemos_types::api::{
    CompareRequest, Comparison, CreateApiKey, CreateSession, CreateTemplate, CreateUser,
    CreateWorkspace, CreatedApiKey, CreatedUser, CreditRequest, Estimate, EstimateRequest,
    EventListParams, ExecCommand, ExecOutput, ExecStreamLine, ListParams, Page, SessionListParams,
    TemplateListParams, TransferListParams, UpdateWorkspace,
};
use onmemos_types::id::{ApiKeyId, SessionId, UserId, WorkspaceId};
use onmemos_types::model::{
    ApiKey, Balance, PriceBook, Session, SessionEvent, Template, Transfer, User, Workspace,
};

use crate::client::Client;
use crate::error::Result;
use crate::stream::{Items, Next, pages, walk};

macro_rules! resource {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'c> {
            client: &'c Client,
        }

        impl<'c> $name<'c> {
            pub(crate) fn new(client: &'c Client) -> Self {
                Self { client }
            }
        }
    };
}

resource!(
    /// `/v1/workspaces`.
    Workspaces
);
resource!(
    /// `/v1/templates`.
    Templates
);
resource!(
    /// `/v1/api-keys`.
    ApiKeys
);
resource!(
    /// `/v1/users` and `/v1/me`.
    Users
);
resource!(
    /// `/v1/credits` and `/v1/pricing`.
    Credits
);

resource!(
    /// `/v1/sessions`.
    Sessions
);
resource!(
    /// `/v1/estimates`.
    Estimates
);
resource!(
    /// `/v1/optimizer`.
    Optimizer
);

impl Optimizer<'_> {
    /// Recommendations for a cluster snapshot under a policy (consolidation, spot placement,
    /// rightsizing, office hours), with their monthly savings and risk. Needs the
    /// `optimizer:run` scope.
    pub async fn recommendations(
        &self,
        request: &onmemos_types::optimizer::OptimizationRequest,
    ) -> Result<onmemos_types::api::OptimizationReport> {
        self.client
            .send_json(Method::POST, "/v1/optimizer/recommendations", request)
            .await
    }
}

impl Sessions<'_> {
    /// Starts a session (quote, credit hold, compute): it is `running` when this returns.
    pub async fn create(&self, request: &CreateSession) -> Result<Session> {
        self.client
            .send_json(Method::POST, "/v1/sessions", request)
            .await
    }

    /// One page of the caller's sessions.
    pub async fn list(&self, params: &SessionListParams) -> Result<Page<Session>> {
        self.client.get_with("/v1/sessions", params).await
    }

    /// Every session matching `params`, fetched a page at a time as the stream is read.
    pub fn list_all(&self, params: SessionListParams) -> Items<Session> {
        pages(self.client.clone(), "/v1/sessions".into(), params)
    }

    /// One session.
    pub async fn get(&self, id: SessionId) -> Result<Session> {
        self.client.get(&format!("/v1/sessions/{id}")).await
    }

    /// Stops a session, charging it up to now.
    pub async fn stop(&self, id: SessionId) -> Result<Session> {
        self.client
            .send_json(Method::POST, &format!("/v1/sessions/{id}/stop"), &())
            .await
    }

    /// Deletes a session that has ended.
    pub async fn delete(&self, id: SessionId) -> Result<()> {
        self.client
            .delete_path::<serde_json::Value>(&format!("/v1/sessions/{id}"))
            .await
            .map(|_| ())
    }

    /// Runs a command and returns its output and exit code.
    pub async fn exec(&self, id: SessionId, command: &ExecCommand) -> Result<ExecOutput> {
        self.client
            .send_json(Method::POST, &format!("/v1/sessions/{id}/exec"), command)
            .await
    }

    /// Runs a command and yields its output as it is produced, ending with its exit (or the
    /// reason it could not be followed).
    pub async fn exec_stream(
        &self,
        id: SessionId,
        command: &ExecCommand,
    ) -> Result<Items<ExecStreamLine>> {
        let req = self
            .client
            .raw(Method::POST, &format!("/v1/sessions/{id}/exec/stream"))
            .json(command);
        crate::stream::ndjson(self.client, req).await
    }

    /// The session's events, oldest first.
    pub async fn events(
        &self,
        id: SessionId,
        params: &EventListParams,
    ) -> Result<Vec<SessionEvent>> {
        self.client
            .get_with(&format!("/v1/sessions/{id}/events"), params)
            .await
    }

    /// Every recorded event after `params.after`, fetched `params.limit` at a time.
    pub fn events_all(&self, id: SessionId, params: EventListParams) -> Items<SessionEvent> {
        let path = format!("/v1/sessions/{id}/events");
        walk(
            self.client.clone(),
            path,
            params,
            |mut params, events: Vec<SessionEvent>| {
                // A short page is the last one.
                let next = match events.last() {
                    Some(last) if events.len() >= params.limit() as usize => {
                        params.after = Some(last.seq);
                        Next::Page(params)
                    }
                    _ => Next::Done,
                };
                (events, next)
            },
        )
    }

    /// The session's events after `after` (all when `None`), then new ones as they happen,
    /// until the session's final event; from `/events/stream` (server-sent events).
    pub async fn follow_events(
        &self,
        id: SessionId,
        after: Option<u64>,
    ) -> Result<Items<SessionEvent>> {
        let mut req = self
            .client
            .raw(Method::GET, &format!("/v1/sessions/{id}/events/stream"));
        if let Some(after) = after {
            req = req.query(&[("after", after)]);
        }
        crate::stream::server_sent(self.client, req).await
    }
}

impl Estimates<'_> {
    /// Quotes one configuration.
    pub async fn quote(&self, request: &EstimateRequest) -> Result<Estimate> {
        self.client
            .send_json(Method::POST, "/v1/estimates", request)
            .await
    }

    /// Quotes several configurations side by side.
    pub async fn compare(&self, request: &CompareRequest) -> Result<Comparison> {
        self.client
            .send_json(Method::POST, "/v1/estimates/compare", request)
            .await
    }
}

impl Credits<'_> {
    /// The caller's balance.
    pub async fn balance(&self) -> Result<Balance> {
        self.client.get("/v1/credits").await
    }

    /// One page of the caller's transfers, oldest first.
    pub async fn transfers(&self, params: &TransferListParams) -> Result<Page<Transfer>> {
        self.client.get_with("/v1/credits/transfers", params).await
    }

    /// Every transfer matching `params`, oldest first, fetched a page at a time.
    pub fn transfers_all(&self, params: TransferListParams) -> Items<Transfer> {
        pages(self.client.clone(), "/v1/credits/transfers".into(), params)
    }

    /// Credits a user with purchased credits (admin).
    pub async fn purchase(&self, request: &CreditRequest) -> Result<Transfer> {
        self.client
            .send_json(Method::POST, "/v1/credits/purchases", request)
            .await
    }

    /// Credits a user with promotional credits (admin).
    pub async fn grant(&self, request: &CreditRequest) -> Result<Transfer> {
        self.client
            .send_json(Method::POST, "/v1/credits/grants", request)
            .await
    }

    /// The price book.
    pub async fn pricing(&self) -> Result<PriceBook> {
        self.client.get("/v1/pricing").await
    }
}

impl Workspaces<'_> {
    /// Creates a workspace.
    pub async fn create(&self, request: &CreateWorkspace) -> Result<Workspace> {
        self.client
            .send_json(Method::POST, "/v1/workspaces", request)
            .await
    }

    /// One page of the caller's workspaces.
    pub async fn list(&self, params: &ListParams) -> Result<Page<Workspace>> {
        self.client.get_with("/v1/workspaces", params).await
    }

    /// Every workspace of the caller, fetched a page at a time.
    pub fn list_all(&self, params: ListParams) -> Items<Workspace> {
        pages(self.client.clone(), "/v1/workspaces".into(), params)
    }

    /// One workspace.
    pub async fn get(&self, id: WorkspaceId) -> Result<Workspace> {
        self.client.get(&format!("/v1/workspaces/{id}")).await
    }

    /// Changes a workspace.
    pub async fn update(&self, id: WorkspaceId, request: &UpdateWorkspace) -> Result<Workspace> {
        self.client
            .send_json(Method::PATCH, &format!("/v1/workspaces/{id}"), request)
            .await
    }

    /// Deletes a workspace.
    pub async fn delete(&self, id: WorkspaceId) -> Result<()> {
        self.client
            .delete_path::<serde_json::Value>(&format!("/v1/workspaces/{id}"))
            .await
            .map(drop)
    }
}

impl Templates<'_> {
    /// One page of the templates the caller can see.
    pub async fn list(&self, params: &TemplateListParams) -> Result<Page<Template>> {
        self.client.get_with("/v1/templates", params).await
    }

    /// Every template matching `params`, fetched a page at a time.
    pub fn list_all(&self, params: TemplateListParams) -> Items<Template> {
        pages(self.client.clone(), "/v1/templates".into(), params)
    }

    /// A template by id (`tpl_…`) or name.
    pub async fn get(&self, id_or_name: &str) -> Result<Template> {
        self.client
            .get(&format!("/v1/templates/{}", path_segment(id_or_name)))
            .await
    }

    /// Creates a custom template.
    pub async fn create(&self, request: &CreateTemplate) -> Result<Template> {
        self.client
            .send_json(Method::POST, "/v1/templates", request)
            .await
    }

    /// Deletes a custom template by id or name.
    pub async fn delete(&self, id_or_name: &str) -> Result<()> {
        self.client
            .delete_path::<serde_json::Value>(&format!(
                "/v1/templates/{}",
                path_segment(id_or_name)
            ))
            .await
            .map(drop)
    }
}

impl ApiKeys<'_> {
    /// Creates a key for the caller; the answer holds its secret.
    pub async fn create(&self, request: &CreateApiKey) -> Result<CreatedApiKey> {
        self.client
            .send_json(Method::POST, "/v1/api-keys", request)
            .await
    }

    /// One page of the caller's keys.
    pub async fn list(&self, params: &ListParams) -> Result<Page<ApiKey>> {
        self.client.get_with("/v1/api-keys", params).await
    }

    /// Every key of the caller, fetched a page at a time.
    pub fn list_all(&self, params: ListParams) -> Items<ApiKey> {
        pages(self.client.clone(), "/v1/api-keys".into(), params)
    }

    /// One of the caller's keys.
    pub async fn get(&self, id: ApiKeyId) -> Result<ApiKey> {
        self.client.get(&format!("/v1/api-keys/{id}")).await
    }

    /// Revokes one of the caller's keys.
    pub async fn revoke(&self, id: ApiKeyId) -> Result<ApiKey> {
        self.client
            .delete_path(&format!("/v1/api-keys/{id}"))
            .await?
            .ok_or_else(|| {
                crate::Error::new(crate::ErrorKind::Decode, "empty answer to a revocation")
            })
    }
}

impl Users<'_> {
    /// The caller's own user.
    pub async fn me(&self) -> Result<User> {
        self.client.get("/v1/me").await
    }

    /// Creates a user and their first key (admin).
    pub async fn create(&self, request: &CreateUser) -> Result<CreatedUser> {
        self.client
            .send_json(Method::POST, "/v1/users", request)
            .await
    }

    /// One page of users (admin).
    pub async fn list(&self, params: &ListParams) -> Result<Page<User>> {
        self.client.get_with("/v1/users", params).await
    }

    /// Every user (admin), fetched a page at a time.
    pub fn list_all(&self, params: ListParams) -> Items<User> {
        pages(self.client.clone(), "/v1/users".into(), params)
    }

    /// A user.
    pub async fn get(&self, id: UserId) -> Result<User> {
        self.client.get(&format!("/v1/users/{id}")).await
    }
}

/// Percent-encodes a caller-given path segment, so it can never change the route.
fn path_segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
