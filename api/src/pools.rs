//! A GPU model's market as the API shows it, and its price history.

use crate::vocabulary;
use chrono::{DateTime, Utc};
use gpuspot_common::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One GPU model's market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub model: String,
    #[schema(value_type = String)]
    pub list_price: Money,
    #[schema(value_type = String)]
    pub market_price: Money,
    pub available: u32,
    /// e.g. `Currently available (3)`.
    pub availability: String,
    pub total: u32,
    /// e.g. `2m`.
    pub notice_period: String,
    pub notice_period_seconds: u64,
    pub pricing: Pricing,
}

/// How a pool prices its running instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    /// Every running instance pays the current market price.
    Market,
    /// An instance keeps the price it started at.
    FixedAtStart,
}

vocabulary!(Pricing { Market => "market", FixedAtStart => "fixed_at_start" });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricePoint {
    pub at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub price: Money,
}
