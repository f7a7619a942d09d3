//! One `[[accounts]]` table to [`AccountSettings`]: its keys, thresholds and the options of the
//! endpoints it turns on, each problem one line that names the account and the key.

use secrecy::SecretString;

use super::schema::RawAccount;
use super::secrets::{read_otp_file, read_secret_file};
use super::thresholds::{
    no_repeated_thresholds, threshold_amount, threshold_asset, validate_min_available,
};
use super::{err, AccountSettings, ConfigError, FuturesSettings, MinAvailable, MinSpendable};

pub(super) fn validate_account(
    index: usize,
    raw: RawAccount,
) -> Result<AccountSettings, ConfigError> {
    let at = format!("accounts[{index}]");
    let name = raw.name.map(|n| n.trim().to_string()).unwrap_or_default();
    if name.is_empty() {
        return Err(err(format!(
            "{at}: name is missing or empty; give every account a short unique name (it becomes the account label)"
        )));
    }
    let at = format!("account {name:?}");
    let api_key = raw
        .api_key
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    if api_key.is_empty() {
        return Err(err(format!(
            "{at}: api_key is missing or empty; paste the API key (the public one) from Kraken's API settings"
        )));
    }
    let path = raw.api_secret_file.ok_or_else(|| {
        err(format!(
            "{at}: api_secret_file is missing; point it at a file that holds the key's base64 private key"
        ))
    })?;
    let api_secret =
        read_secret_file(&path, "api_secret_file").map_err(|e| err(format!("{at}: {e}")))?;
    super::secrets::check_private_key_length(&api_secret, "api_secret_file")
        .map_err(|e| err(format!("{at}: {e}")))?;
    let api_otp = raw
        .api_otp_file
        .map(|path| read_otp_file(&path).map_err(|e| err(format!("{at}: {e}"))))
        .transpose()?;
    let futures = validate_futures(&at, raw.futures_api_key, raw.futures_api_secret_file)?;
    let mut min_available: Vec<MinAvailable> = Vec::with_capacity(raw.min_available.len());
    for (index, raw) in raw.min_available.into_iter().enumerate() {
        min_available.push(validate_min_available(
            &format!("{at}: min_available[{index}]"),
            raw,
        )?);
    }
    let mut min_spendable: Vec<MinSpendable> = Vec::with_capacity(raw.min_spendable.len());
    for (index, raw) in raw.min_spendable.into_iter().enumerate() {
        let at = format!("{at}: min_spendable[{index}]");
        min_spendable.push(MinSpendable {
            asset: threshold_asset(&at, raw.asset)?,
            amount: threshold_amount(&at, raw.amount)?,
        });
    }
    let account = AccountSettings {
        name,
        api_key: SecretString::from(api_key),
        api_secret,
        min_available,
        min_spendable,
        api_otp,
        futures,
        options: raw.options,
    };
    no_repeated_thresholds(&at, &account)?;
    Ok(account)
}

/// `futures_api_key` with `futures_api_secret_file`: both or neither.
fn validate_futures(
    at: &str,
    api_key: Option<String>,
    secret_file: Option<std::path::PathBuf>,
) -> Result<Option<FuturesSettings>, ConfigError> {
    let api_key = api_key.map(|k| k.trim().to_string());
    let (api_key, secret_file) = match (api_key, secret_file) {
        (None, None) => return Ok(None),
        (Some(key), Some(file)) if !key.is_empty() => (key, file),
        (Some(_), Some(_)) => {
            return Err(err(format!(
                "{at}: futures_api_key is empty; paste the public key of a Kraken Futures API key (created on the futures site)"
            )))
        }
        (Some(_), None) => {
            return Err(err(format!(
                "{at}: futures_api_key is set but futures_api_secret_file is missing; point it at a file that holds the futures key's base64 private key"
            )))
        }
        (None, Some(_)) => {
            return Err(err(format!(
                "{at}: futures_api_secret_file is set but futures_api_key is missing; add the futures key's public key"
            )))
        }
    };
    let api_secret = read_secret_file(&secret_file, "futures_api_secret_file")
        .map_err(|e| err(format!("{at}: {e}")))?;
    Ok(Some(FuturesSettings {
        api_key: SecretString::from(api_key),
        api_secret,
    }))
}
