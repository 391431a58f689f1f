//! The spot auction of one pool (docs/contracts.md#market, seeds 000 and 002): a uniform-price
//! auction run every `price_tick`. Spot supply is the pool's healthy units minus those regular
//! instances hold. Demand (running and queued spot instances) is ranked by bid — ties go to the
//! running one, then the older — and the first bids whose units fit in the supply win. The price is
//! the larger of the surplus price and the highest losing bid, never above list; everyone pays it,
//! capped by their own bid. Which running instances that costs their units (losers, and bids below
//! the price) is [`super::spot`]'s to say.

use chrono::{DateTime, Utc};
use gpuspot_common::{InstanceId, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A pool's market price at one tick, for the price history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricePoint {
    pub model: String,
    pub at: DateTime<Utc>,
    pub price: Money,
}

/// The current price of each pool, and the points recorded since the last commit.
#[derive(Debug, Default)]
pub struct Prices {
    current: BTreeMap<String, Money>,
    points: Vec<PricePoint>,
}

impl Prices {
    pub fn restore(&mut self, prices: BTreeMap<String, Money>) {
        self.current = prices;
    }

    pub fn get(&self, pool: &str) -> Option<Money> {
        self.current.get(pool).copied()
    }

    /// Records the tick's price; returns the one before it.
    pub fn set(&mut self, pool: &str, price: Money, now: DateTime<Utc>) -> Option<Money> {
        self.points.push(PricePoint { model: pool.to_owned(), at: now, price });
        self.current.insert(pool.to_owned(), price)
    }

    pub fn take_points(&mut self) -> Vec<PricePoint> {
        std::mem::take(&mut self.points)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpotBid {
    pub instance: InstanceId,
    pub bid: Money,
    pub units: usize,
    pub running: bool,
    /// Creation order: older first among equal bids.
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuctionResult {
    pub price: Money,
    pub winners: Vec<InstanceId>,
    pub losers: Vec<InstanceId>,
}

/// Runs the auction. `surplus` is the pool's surplus price at its current utilisation.
pub fn auction(
    mut bids: Vec<SpotBid>,
    supply: usize,
    surplus: Money,
    list: Money,
) -> AuctionResult {
    bids.sort_by(|a, b| b.bid.cmp(&a.bid).then(b.running.cmp(&a.running)).then(a.seq.cmp(&b.seq)));
    let mut used = 0;
    let mut full = false;
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    let mut highest_losing = None;
    for bid in bids {
        let fits = !full && used + bid.units <= supply;
        if fits {
            used += bid.units;
            winners.push(bid.instance);
        } else {
            // Strict priority: once a bid does not fit, no lower bid may jump ahead of it.
            full = true;
            highest_losing = highest_losing.max(Some(bid.bid));
            losers.push(bid.instance);
        }
    }
    let price = surplus.max(highest_losing.unwrap_or(Money::ZERO)).min(list);
    AuctionResult { price, winners, losers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(id: &str, cents: i64, units: usize, running: bool, seq: u64) -> SpotBid {
        SpotBid { instance: InstanceId::from(id), bid: Money(cents * 10_000), units, running, seq }
    }

    const LIST: Money = Money(2_580_000);
    const SURPLUS: Money = Money(258_000);

    #[test]
    fn without_competition_everyone_wins_at_the_surplus_price() {
        let result =
            auction(vec![bid("a", 50, 2, true, 1), bid("b", 30, 2, false, 2)], 8, SURPLUS, LIST);
        assert_eq!(result.winners.len(), 2);
        assert!(result.losers.is_empty());
        assert_eq!(result.price, SURPLUS);
    }

    #[test]
    fn oversubscribed_price_is_the_highest_losing_bid() {
        let bids = vec![
            bid("high", 90, 4, false, 5),
            bid("mid", 60, 4, true, 1),
            bid("low", 40, 4, true, 2),
            bid("lower", 35, 4, true, 3),
        ];
        let result = auction(bids, 8, SURPLUS, LIST);
        assert_eq!(result.winners, vec![InstanceId::from("high"), InstanceId::from("mid")]);
        assert_eq!(result.losers, vec![InstanceId::from("low"), InstanceId::from("lower")]);
        assert_eq!(result.price, Money(400_000));
    }

    #[test]
    fn ties_go_to_the_running_then_the_older() {
        let bids = vec![
            bid("queued-old", 50, 1, false, 1),
            bid("running-new", 50, 1, true, 9),
            bid("running-old", 50, 1, true, 2),
        ];
        let result = auction(bids, 2, SURPLUS, LIST);
        assert_eq!(
            result.winners,
            vec![InstanceId::from("running-old"), InstanceId::from("running-new")]
        );
        assert_eq!(result.losers, vec![InstanceId::from("queued-old")]);
        assert_eq!(result.price, Money(500_000));
    }

    #[test]
    fn price_is_capped_at_list() {
        let bids = vec![bid("a", 900, 1, true, 1), bid("b", 800, 1, false, 2)];
        let result = auction(bids, 1, SURPLUS, LIST);
        assert_eq!(result.price, LIST);
    }

    #[test]
    fn without_competition_even_a_bid_below_the_surplus_price_wins() {
        let result = auction(vec![bid("cheap", 10, 1, true, 1)], 8, SURPLUS, LIST);
        assert_eq!(result.winners, vec![InstanceId::from("cheap")]);
        assert_eq!(result.price, SURPLUS);
    }

    #[test]
    fn nothing_to_sell_means_every_bid_loses() {
        let result = auction(vec![bid("a", 90, 1, true, 1)], 0, SURPLUS, LIST);
        assert_eq!(result.losers, vec![InstanceId::from("a")]);
        assert_eq!(result.price, Money(900_000));
    }

    #[test]
    fn a_big_bid_that_does_not_fit_blocks_lower_ones() {
        let bids = vec![
            bid("a", 90, 6, true, 1),
            bid("big", 80, 4, false, 2),
            bid("small", 70, 1, false, 3),
        ];
        let result = auction(bids, 8, SURPLUS, LIST);
        assert_eq!(result.winners, vec![InstanceId::from("a")]);
        assert_eq!(result.losers.len(), 2);
        assert_eq!(result.price, Money(800_000));
    }
}
