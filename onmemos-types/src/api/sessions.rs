//! Request and response bodies of the sessions API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::id::{TemplateId, WorkspaceId};
use crate::model::{MicroCredits, Placement, SessionStatus};
use crate::validation;

/// Limits a session request may set; the template's defaults fill the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Maximum run time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_secs: Option<u64>,
    /// Maximum cost in micro-credits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_micros: Option<MicroCredits>,
    /// Idle timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
}

/// How long a session may run before it is stopped (`max_duration`).
///
/// A distinct type from a client's per-request timeout, so neither can be passed for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionLifetime(pub std::time::Duration);

impl SessionLifetime {
    /// A lifetime of `hours` hours.
    pub fn hours(hours: u64) -> Self {
        Self(std::time::Duration::from_secs(hours * 3600))
    }

    /// Whole seconds, a started second counting as one (the wire's unit).
    pub fn as_secs_ceil(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

impl LimitOverrides {
    /// These limits with the session's lifetime set.
    pub fn with_lifetime(mut self, lifetime: SessionLifetime) -> Self {
        self.max_duration_secs = Some(lifetime.as_secs_ceil());
        self
    }

    /// The lifetime these limits set, if any.
    pub fn lifetime(&self) -> Option<SessionLifetime> {
        self.max_duration_secs
            .map(|s| SessionLifetime(std::time::Duration::from_secs(s)))
    }
}

/// `POST /v1/sessions`: start a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The workspace to run in.
    pub workspace_id: WorkspaceId,
    /// The template: its id or its name (`python`, or one of the caller's own).
    #[validate(length(min = 1, max = 128))]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub template: String,
    /// Limits, within the server's bounds; unset ones come from the template.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Spot or on-demand (default on-demand).
    #[serde(default)]
    pub placement: Placement,
    /// Environment variables, over the template's and the workspace's.
    #[serde(default)]
    #[validate(custom(function = "validation::env_vars"))]
    pub env: BTreeMap<String, String>,
}

/// Query of `GET /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SessionListParams {
    /// Only sessions of this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<WorkspaceId>,
    /// Only sessions in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    /// Only sessions of this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<TemplateId>,
    /// Items per page (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `POST /v1/sessions/{id}/exec`: run a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecCommand {
    /// Program and arguments (no shell: use `["sh", "-c", "…"]` for one).
    #[validate(length(min = 1, max = 256))]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 256))]
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    #[validate(custom(function = "validation::env_vars"))]
    pub env: BTreeMap<String, String>,
    /// Text written to the command's standard input, then closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 1048576))]
    #[cfg_attr(feature = "openapi", schema(max_length = 1048576))]
    pub stdin: Option<String>,
    /// Kill the command after this many seconds (1–3600, default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 3600))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub timeout_secs: Option<u64>,
}

impl ExecCommand {
    /// The timeout asked for, 60 seconds when none was.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(60))
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecOutput {
    /// Standard output, exactly: its text, or base64 when `stdout_encoding` says so.
    pub stdout: String,
    /// `base64` when standard output is not UTF-8; absent for text.
    #[serde(default, skip_serializing_if = "OutputEncoding::is_utf8")]
    pub stdout_encoding: OutputEncoding,
    /// Standard error, exactly: its text, or base64 when `stderr_encoding` says so.
    pub stderr: String,
    /// `base64` when standard error is not UTF-8; absent for text.
    #[serde(default, skip_serializing_if = "OutputEncoding::is_utf8")]
    pub stderr_encoding: OutputEncoding,
    /// The exit code; `null` when it was killed (signal or timeout).
    pub exit_code: Option<i32>,
    /// Whether it was killed for running past its timeout.
    pub timed_out: bool,
    /// Whether `stdout` or `stderr` was cut at [`MAX_EXEC_OUTPUT_BYTES`] (8 MiB each); the
    /// streaming exec has no such limit.
    pub truncated: bool,
}

/// The most output of each stream a synchronous exec returns, in bytes (8 MiB).
pub const MAX_EXEC_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Query of `GET /v1/sessions/{id}/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventListParams {
    /// Only events after this `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many (1–1000, default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
}

impl EventListParams {
    /// Events per page when `limit` is not set.
    pub const DEFAULT_LIMIT: u32 = 200;

    /// The page size these parameters ask for.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }
}

/// A control message from a shell client (a text frame on `/v1/sessions/{id}/shell`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ShellClientFrame {
    /// The terminal changed size.
    Resize {
        /// Rows (1–1000).
        rows: u16,
        /// Columns (1–1000).
        cols: u16,
    },
    /// Asks for a `status` frame.
    Status,
    /// Asks for a `credits` frame.
    Credits,
}

/// A control message from the server (a text frame on `/v1/sessions/{id}/shell`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShellServerFrame {
    /// The session as it is now.
    Status {
        /// The session.
        session: Box<crate::model::Session>,
    },
    /// The owner's balance.
    Credits {
        /// The balance.
        balance: Box<crate::model::Balance>,
    },
    /// Something the user should know: a limit is near, or the session stopped.
    Notice {
        /// A sentence for people.
        message: String,
        /// The warning, when it is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warning: Option<crate::model::Warning>,
    },
    /// The terminal ended; the server closes the socket after this.
    Exit {
        /// The shell's exit code, when it exited by itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// The session's stop reason (`user`, `idle_timeout`, …), or `shell_exited`.
        reason: String,
    },
    /// A control frame was not understood; the session is unharmed.
    Error {
        /// The wire code (`invalid_request`).
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// How the bytes of a command's output are written in a JSON string: as their text when they
/// are UTF-8 (the usual case), else as base64 — so output reaches the client byte for byte,
/// binary included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutputEncoding {
    /// The string is the bytes' UTF-8 text.
    #[default]
    Utf8,
    /// The string is the bytes in standard base64.
    Base64,
}

impl OutputEncoding {
    /// Whether this is [`OutputEncoding::Utf8`] (the default, left out on the wire).
    pub fn is_utf8(&self) -> bool {
        *self == Self::Utf8
    }

    /// `bytes` as a string, and the encoding it needed.
    pub fn encode(bytes: &[u8]) -> (String, Self) {
        use base64::Engine as _;
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), Self::Utf8),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                Self::Base64,
            ),
        }
    }

    /// The bytes `data`, written in this encoding, stands for.
    pub fn decode(self, data: &str) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine as _;
        match self {
            Self::Utf8 => Ok(data.as_bytes().to_vec()),
            Self::Base64 => base64::engine::general_purpose::STANDARD.decode(data),
        }
    }
}

/// Turns the chunks of one output stream into [`OutputEncoding`]ed strings without ever
/// cutting a character in two: the bytes of a character split across chunks wait for the rest
/// of it. Text stays text; bytes that are not UTF-8 go as base64.
#[derive(Debug, Default)]
pub struct OutputChunks {
    pending: Vec<u8>,
}

impl OutputChunks {
    /// The next string to send after `chunk` arrived, if any.
    pub fn push(&mut self, chunk: &[u8]) -> Option<(String, OutputEncoding)> {
        self.pending.extend_from_slice(chunk);
        let text_until = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // A character cut at the end: send what comes before it, keep its bytes.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Not UTF-8: these bytes go as they are.
            Err(_) => return self.finish(),
        };
        if text_until == 0 {
            return None;
        }
        let rest = self.pending.split_off(text_until);
        let text = std::mem::replace(&mut self.pending, rest);
        Some(OutputEncoding::encode(&text))
    }

    /// Whatever is left at the end of the stream (a character that never completed).
    pub fn finish(&mut self) -> Option<(String, OutputEncoding)> {
        if self.pending.is_empty() {
            return None;
        }
        Some(OutputEncoding::encode(&std::mem::take(&mut self.pending)))
    }
}

/// One line of `POST /v1/sessions/{id}/exec/stream` (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecStreamLine {
    /// Bytes on standard output, exactly (see [`OutputEncoding`]).
    Stdout {
        /// The bytes: their text, or base64 when `encoding` says so.
        data: String,
        /// `base64` when the bytes are not UTF-8; absent for text.
        #[serde(default, skip_serializing_if = "OutputEncoding::is_utf8")]
        encoding: OutputEncoding,
    },
    /// Bytes on standard error, exactly (see [`OutputEncoding`]).
    Stderr {
        /// The bytes: their text, or base64 when `encoding` says so.
        data: String,
        /// `base64` when the bytes are not UTF-8; absent for text.
        #[serde(default, skip_serializing_if = "OutputEncoding::is_utf8")]
        encoding: OutputEncoding,
    },
    /// The command ended (`exit_code` null when killed).
    Exit {
        /// The exit code.
        exit_code: Option<i32>,
    },
    /// The command could not be followed to its end.
    Error {
        /// What went wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn output_chunks_never_cut_a_character_and_keep_binary_exact() {
        use super::{OutputChunks, OutputEncoding};
        let mut c = OutputChunks::default();
        // "é" is C3 A9: its first half waits for the second.
        assert_eq!(
            c.push(b"caf\xc3"),
            Some(("caf".into(), OutputEncoding::Utf8))
        );
        assert_eq!(c.push(b"\xa9!"), Some(("é!".into(), OutputEncoding::Utf8)));
        assert_eq!(c.push(b"\xe2"), None);
        assert_eq!(c.push(b"\x82"), None);
        assert_eq!(c.push(b"\xac"), Some(("€".into(), OutputEncoding::Utf8)));
        // Not UTF-8: base64, byte for byte.
        let (data, encoding) = c.push(&[0xff, 0x00, 0xfe]).unwrap_or_default();
        assert_eq!(encoding, OutputEncoding::Base64);
        assert_eq!(encoding.decode(&data).ok(), Some(vec![0xff, 0x00, 0xfe]));
        // A character cut at the very end is flushed as the bytes it is.
        assert_eq!(c.push(b"\xc3"), None);
        let (data, encoding) = c.finish().unwrap_or_default();
        assert_eq!(encoding.decode(&data).ok(), Some(vec![0xc3]));
        assert_eq!(c.finish(), None);
    }

    use super::*;

    #[test]
    fn a_lifetime_is_sent_in_whole_seconds_rounded_up() {
        let limits = LimitOverrides::default().with_lifetime(SessionLifetime::hours(2));
        assert_eq!(limits.max_duration_secs, Some(7200));
        assert_eq!(limits.lifetime(), Some(SessionLifetime::hours(2)));
        let limits =
            LimitOverrides::default().with_lifetime(SessionLifetime(Duration::from_millis(1500)));
        assert_eq!(limits.max_duration_secs, Some(2));
    }
}
