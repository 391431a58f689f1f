//! Why nothing takes a request now ([`Shortage`]), worded for a request that waits and for
//! one that asked to fail instead (docs/contracts.md#failures-and-quotas: `out_of_stock: …`, never
//! "waiting"). A reason names hostnames and says a host is busy; it never says whose instances hold
//! it or how (issue 25): another tenant reads it.

use super::super::cluster::Cluster;
use super::super::model::InstanceRequest;
use super::super::placement::{self, NoFit};
use super::Pass;
use super::occupancy::Occupancy;
use gpuspot_common::{AccountId, Money};

/// Seed 003's words for a spot request that waits for capacity.
pub const SPOT_INSUFFICIENT: &str = "Spot capacity is currently insufficient to run";

/// What stands between a request and a placement now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortage {
    /// Matching hosts exist and their units are taken.
    Busy {
        /// The request, as `placement::describe` words it.
        request: String,
        /// The matching hosts and how busy they are ([`Occupancy::describe`]).
        occupancy: String,
        /// Spot: how its bid compares with the market (not the obstacle).
        bid: Option<String>,
    },
    /// The bid is the obstacle (and, said after it, what else is).
    Outbid(String),
    /// No known host could ever take it as asked.
    Never(String),
}

impl Shortage {
    /// The reason of a request that waits.
    pub fn waiting(&self) -> String {
        match self {
            Shortage::Busy { request, occupancy, bid: None } => {
                format!(
                    "waiting for capacity: no matching host has free units for {request}: {occupancy}"
                )
            }
            Shortage::Busy { request, occupancy, bid: Some(bid) } => {
                format!("waiting for capacity: {SPOT_INSUFFICIENT} {request}: {occupancy}; {bid}")
            }
            Shortage::Outbid(text) => text.clone(),
            Shortage::Never(text) => format!("{text} (waiting for a host that can to join)"),
        }
    }

    /// The reason of a request that failed rather than wait.
    pub fn failed(&self) -> String {
        let now = "out_of_stock: no matching capacity is free now";
        match self {
            Shortage::Busy { request, occupancy, .. } => {
                format!("{now} (no matching host has free units for {request}: {occupancy})")
            }
            Shortage::Outbid(text) => format!("{now} ({text})"),
            Shortage::Never(text) => format!("out_of_stock: {text}"),
        }
    }
}

impl Cluster {
    /// Why a request of `account` that found no placement cannot be placed, as things are
    /// now: no host for it at all; for spot, whether the bid is the obstacle; else which
    /// hosts match and how busy they are.
    pub(crate) fn shortage(
        &self,
        request: &InstanceRequest,
        account: &AccountId,
        no_fit: NoFit,
        pass: &mut Pass,
    ) -> Shortage {
        // Pools the bid does not cover were left out: what is true at any price?
        let no_fit = match request.billing.bid() {
            None => no_fit,
            Some(bid) => match placement::place(&self.registry, request, |_| Money::ZERO, |_| true)
            {
                Ok(placement) => return Shortage::Outbid(self.outbid(&placement.gpu_model, bid)),
                Err(at_any_price) => at_any_price,
            },
        };
        let NoFit::Wait(_) = no_fit else {
            return Shortage::Never(no_fit.reason().to_owned());
        };
        let occupancy = pass.occupancy(self, request, account);
        let described = placement::describe(request);
        let text = occupancy.describe();
        match request.billing.bid().map(|bid| self.bid_against(&occupancy, bid)) {
            None => Shortage::Busy { request: described, occupancy: text, bid: None },
            Some(Ok(covered)) => {
                Shortage::Busy { request: described, occupancy: text, bid: Some(covered) }
            }
            Some(Err(obstacle)) => Shortage::Outbid(format!(
                "{obstacle}; and no matching host has free units for {described}: {text}"
            )),
        }
    }

    /// A placement would exist at any price but not at this bid: the bid is what stops
    /// it (or the model has no spot market).
    fn outbid(&self, gpu_model: &str, bid: Money) -> String {
        match self.market_price(gpu_model) {
            None => {
                format!("no spot market for {gpu_model}: no pool is configured for this GPU model")
            }
            Some(price) => {
                format!("outbid: your bid {bid} is below the market price {price} for {gpu_model}")
            }
        }
    }

    /// Whether `bid` covers the market price of any matching model: Ok says it does (the
    /// bid is not the obstacle), Err says how it is (below all of them, or no market).
    fn bid_against(&self, occupancy: &Occupancy, bid: Money) -> Result<String, String> {
        let prices: Vec<(Money, &String)> = occupancy
            .models
            .iter()
            .filter_map(|model| Some((self.market_price(model)?, model)))
            .collect();
        let Some(&(lowest, model)) = prices.iter().min() else {
            let models: Vec<&str> = occupancy.models.iter().map(String::as_str).collect();
            return Err(format!(
                "no spot market for {}: no pool is configured for this GPU model",
                models.join(", ")
            ));
        };
        if bid >= lowest {
            Ok(format!("your bid {bid} covers the market price {lowest} for {model}"))
        } else {
            Err(format!("outbid: your bid {bid} is below the market price {lowest} for {model}"))
        }
    }
}
