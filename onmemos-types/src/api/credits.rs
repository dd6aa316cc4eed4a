use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::id::UserId;
use crate::model::{MicroCredits, TransferKind};

/// `POST /v1/credits/purchases` and `POST /v1/credits/grants` (admin): credit a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// Who receives the credits.
    pub user_id: UserId,
    /// How many micro-credits (1 credit = 1,000,000).
    pub amount_micros: MicroCredits,
    /// Consumption priority: lower is spent first (default: 0 for promotions, 10 for purchases,
    /// so free credit goes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// When the unspent remainder expires (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Free text: an invoice, a campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 256))]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub reference: Option<String>,
}

/// The query parameters of `GET /v1/credits/transfers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TransferListParams {
    /// Only transfers of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TransferKind>,
    /// Items per page (1–200, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
