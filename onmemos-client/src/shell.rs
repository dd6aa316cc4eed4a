//! The client side of the shell WebSocket (`/v1/sessions/{id}/shell`).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use onmemos_core::api::{ShellClientFrame, ShellServerFrame};
use onmemos_core::id::SessionId;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{Error, ErrorKind, Result};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What arrives from a session's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Terminal output.
    Output(Bytes),
    /// A control message: status, credits, a notice, the exit, or an error.
    Control(ShellServerFrame),
}

/// An open terminal of a running session.
#[derive(Debug)]
pub struct Shell {
    socket: Socket,
}

impl Shell {
    pub(crate) async fn connect(
        base: &str,
        api_key: Option<&str>,
        session: SessionId,
        rows: u16,
        cols: u16,
    ) -> Result<Self> {
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("the server URL {base:?} is neither http:// nor https://"),
            ));
        };
        let url = format!("{ws_base}/v1/sessions/{session}/shell?rows={rows}&cols={cols}");
        let mut request = url
            .into_client_request()
            .map_err(|e| Error::new(ErrorKind::Validation, format!("shell URL: {e}")))?;
        if let Some(key) = api_key {
            let value = format!("Bearer {key}").parse().map_err(|_| {
                Error::new(ErrorKind::Validation, "the API key is not a valid header")
            })?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            // Refused before the upgrade: the body is the API's JSON error.
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                Err(Error::from_response(status, &body, None))
            }
            Err(e) => Err(Error::new(ErrorKind::Network, format!("shell: {e}"))),
        }
    }

    /// Sends keyboard input.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.socket
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }

    /// Sends a control message (`resize`, `status`, `credits`).
    pub async fn control(&mut self, frame: &ShellClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame)
            .map_err(|e| Error::new(ErrorKind::Validation, format!("control frame: {e}")))?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }

    /// The next output or control message; `None` once the server closed the terminal.
    pub async fn next(&mut self) -> Option<Result<ShellEvent>> {
        loop {
            return match self.socket.next().await? {
                Ok(Message::Binary(b)) => Some(Ok(ShellEvent::Output(b))),
                Ok(Message::Text(t)) => Some(
                    serde_json::from_str(t.as_str())
                        .map(ShellEvent::Control)
                        .map_err(|e| Error::decode(e, 101)),
                ),
                Ok(Message::Close(_)) => None,
                Ok(_) => continue,
                Err(e) => Some(Err(Error::new(ErrorKind::Network, format!("shell: {e}")))),
            };
        }
    }

    /// Closes the socket (the session keeps running).
    pub async fn close(mut self) -> Result<()> {
        self.socket
            .close(None)
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("shell: {e}")))
    }
}
