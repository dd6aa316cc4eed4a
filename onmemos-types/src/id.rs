//! Typed, prefixed, time-ordered identifiers.
//!
//! Each id is a UUIDv7 shown as `<prefix>_<32 hex digits>` (`ws_0190f5…`), so an id says what it
//! names, a workspace id can never be passed where a session id is expected, and ids sort by
//! creation time (which cursor pagination relies on).
//!
//! ```
//! use onmemos_types::id::WorkspaceId;
//!
//! let id = WorkspaceId::new();
//! let text = id.to_string();
//! assert!(text.starts_with("ws_"));
//! assert_eq!(text.parse::<WorkspaceId>().unwrap(), id);
//! assert!("tpl_0190f5d2a3b47c1e8e2f6a9b0c1d2e3f".parse::<WorkspaceId>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// The error of parsing an id of the wrong form or prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {expected} id {input:?}: expected `{prefix}_` followed by 32 hex digits")]
pub struct ParseIdError {
    expected: &'static str,
    prefix: &'static str,
    input: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix of this id's text form.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made before it on this machine.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id of a known UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError { expected: $what, prefix: $prefix, input: s.chars().take(80).collect() };
                let hex = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or_else(err)?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err());
                }
                Uuid::try_parse(hex).map(Self).map_err(|_| err())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .description(Some(concat!("Identifier of a ", $what, ".")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

define_id!(
    /// Identifies a [`User`](crate::model::User).
    UserId, "usr", "user"
);
define_id!(
    /// Identifies an [`ApiKey`](crate::model::ApiKey).
    ApiKeyId, "key", "api key"
);
define_id!(
    /// Identifies a [`Workspace`](crate::model::Workspace).
    WorkspaceId, "ws", "workspace"
);
define_id!(
    /// Identifies a [`Template`](crate::model::Template).
    TemplateId, "tpl", "template"
);
define_id!(
    /// Identifies a [`Session`](crate::model::Session).
    SessionId, "ses", "session"
);
define_id!(
    /// Identifies an [`Upload`](crate::model::Upload) in parts.
    UploadId, "upl", "upload"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = SessionId::new();
        assert_eq!(id.to_string().parse::<SessionId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap_or_default();
        let back: SessionId = serde_json::from_str(&json).unwrap_or_else(|_| SessionId::new());
        assert_eq!(back, id);
    }

    #[test]
    fn wrong_prefix_length_or_digits_are_rejected() {
        let hex = UserId::new().as_uuid().simple().to_string();
        assert!(format!("usr_{hex}").parse::<UserId>().is_ok());
        assert!(format!("ws_{hex}").parse::<UserId>().is_err());
        assert!(format!("usr{hex}").parse::<UserId>().is_err());
        assert!(format!("usr_{}", &hex[1..]).parse::<UserId>().is_err());
        assert!(format!("usr_{}g", &hex[1..]).parse::<UserId>().is_err());
        assert!("usr_".parse::<UserId>().is_err());
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_as_text() {
        let ids: Vec<String> = (0..100).map(|_| WorkspaceId::new().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
