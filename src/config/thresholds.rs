//! The thresholds of an account (`min_spendable`, `min_available`), from the file or from the
//! environment account's `KRAKEN_MIN_SPENDABLE` and `KRAKEN_MIN_AVAILABLE`: assets read as Kraken
//! labels them, exact amounts, one threshold per asset.

use rust_decimal::Decimal;

use super::schema::RawMinAvailable;
use super::{err, AccountSettings, ConfigError, MinAvailable};
use crate::kraken::assets::asset_label_of;
use crate::kraken::AssetFamily;

pub(super) fn validate_min_available(
    at: &str,
    raw: RawMinAvailable,
) -> Result<MinAvailable, ConfigError> {
    let asset = threshold_asset(at, raw.asset)?;
    let family = raw
        .family
        .map(|f| f.trim().to_string())
        .unwrap_or_else(|| "spot".to_string());
    if family.is_empty() {
        return Err(err(format!(
            "{at}: family is empty; use a family label such as \"spot\" or \"staked\", or leave it out for spot"
        )));
    }
    Ok(MinAvailable {
        asset,
        family: AssetFamily::from_label(&family),
        amount: threshold_amount(at, raw.amount)?,
    })
}

/// The `asset` of a threshold, as its label value, read like every asset code of the configuration
/// ([`asset_label_of`]: any case, `ZUSD` -> `USD`, `BTC` -> `XBT`), so it matches the balances.
pub(super) fn threshold_asset(at: &str, asset: Option<String>) -> Result<String, ConfigError> {
    let asset = asset.map(|a| a.trim().to_string()).unwrap_or_default();
    if asset.is_empty() {
        return Err(err(format!(
            "{at}: asset is missing; name the asset as it appears in the asset label, e.g. asset = \"USD\""
        )));
    }
    if asset.contains(char::is_whitespace) {
        return Err(err(format!(
            "{at}: asset = {asset:?} is not an asset code; name the asset as it appears in the asset label, e.g. asset = \"XBT\""
        )));
    }
    Ok(asset_label_of(&asset))
}

/// The `amount` of a threshold: an exact decimal, 0 or more.
pub(super) fn threshold_amount(at: &str, amount: Option<String>) -> Result<Decimal, ConfigError> {
    let text = amount.unwrap_or_default();
    let amount = exact_decimal(
        at,
        "amount",
        &text,
        "write it as a string such as amount = \"5000\" or \"0.25\"",
    )?;
    if amount.is_sign_negative() {
        return Err(err(format!(
            "{at}: amount = {text:?} is negative; a minimum is 0 or more"
        )));
    }
    Ok(amount)
}

/// One threshold per asset (and family, for `min_available`): two spellings of one asset (`BTC` and
/// `xbt`) are the same threshold written twice.
pub(super) fn no_repeated_thresholds(
    at: &str,
    account: &AccountSettings,
) -> Result<(), ConfigError> {
    for (index, minimum) in account.min_available.iter().enumerate() {
        if account.min_available[..index]
            .iter()
            .any(|m| m.asset == minimum.asset && m.family == minimum.family)
        {
            return Err(err(format!(
                "{at}: min_available lists asset {:?} family {:?} twice; keep one threshold per asset and family",
                minimum.asset,
                minimum.family.label()
            )));
        }
    }
    for (index, minimum) in account.min_spendable.iter().enumerate() {
        if account.min_spendable[..index]
            .iter()
            .any(|m| m.asset == minimum.asset)
        {
            return Err(err(format!(
                "{at}: min_spendable lists asset {:?} twice; keep one threshold per asset",
                minimum.asset
            )));
        }
    }
    Ok(())
}

/// The value `text` of `key` as an exact decimal, or an error that says how to write it (`how`).
pub fn exact_decimal(at: &str, key: &str, text: &str, how: &str) -> Result<Decimal, ConfigError> {
    Decimal::from_str_exact(text.trim()).map_err(|_| {
        err(format!(
            "{at}: {key} = {text:?} is not a decimal number; {how}"
        ))
    })
}
