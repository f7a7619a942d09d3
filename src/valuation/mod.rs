//! Balances valued in the configured quote currencies: a part of its own that collectors feed
//! holdings into and that the price task keeps current.
//!
//! - [`market`]: Kraken's pairs and last prices, the routes from an asset to a quote, and the value of
//!   a set of holdings ([`Valuation`], [`value_holdings`]): pure arithmetic in `Decimal`.
//! - [`prices`]: the price task ([`prices::PriceRefresher`]) that reads the public API, the asset names
//!   and pairs kept across reloads ([`prices::MarketCache`]), and the valuation's families
//!   ([`prices::ValuationFamilies`]).
//!
//! The narrow port the collectors use: [`Valuation::set_holdings`] (an account's balances, valued,
//! with the prices of what is held), [`Valuation::clear_holdings`], and [`Valuation::value_now`]
//! (one amount: a futures cash wallet).

pub mod market;
pub mod prices;

pub use market::*;
