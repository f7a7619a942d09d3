//! `GET /api/auth/v1/api-keys/v3/check`: what a Kraken Futures key may do and where from, decoded
//! into the spot [`KeyInfo`] shape. Signed like the other futures calls, over its path (which has no
//! `/derivatives` prefix to leave out).
//!
//! Kraken documents the answer's fields (`apiKey`, `accountUid`, `iiban`, `createdAt`, `permissions`,
//! `allowedCidrBlock`, `allowedCidrBlocks`) but not the shape of `permissions`. It is read as either a
//! list of strings (each a permission) or an object: a member whose value is `true` is the
//! permission `name`, a string value gives `name:value` (`general:read_only`), `false`, `null` and
//! empty values give nothing, and a nested object is read the same way with `name.` before its
//! members. `apiKey`, `accountUid` and `iiban` are never read.

use serde::Deserialize;
use serde_json::Value;

use super::{refusal, FuturesClient};
use crate::kraken::api_key::{checked_names, KeyInfo};
use crate::kraken::client::printable;
use crate::kraken::envelope::decode_error;
use crate::kraken::error::PollError;

/// The path requested (after `futures_api_url`) and signed.
pub const PATH: &str = "/api/auth/v1/api-keys/v3/check";

/// The `endpoint` label.
pub const METHOD: &str = "futures/api-keys/check";

/// What the futures key needs: nothing beyond being a futures key.
pub const PERMISSION: &str = "none (any Kraken Futures key)";

impl FuturesClient {
    /// Calls the key check once.
    pub async fn key_check(&self) -> Result<KeyInfo, PollError> {
        self.get(PATH, decode_key_check).await
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCheck {
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    permissions: Option<Value>,
    #[serde(default)]
    allowed_cidr_block: Option<String>,
    #[serde(default)]
    allowed_cidr_blocks: Option<Vec<String>>,
}

/// Decodes a key check body: the key's settings, the futures error, or a decode error.
pub fn decode_key_check(body: &[u8]) -> Result<KeyInfo, PollError> {
    let raw: RawCheck = serde_json::from_slice(body).map_err(|err| {
        decode_error(format!(
            "expected Kraken Futures' key check answer, got something else ({err}, {} bytes)",
            body.len()
        ))
    })?;
    if let Some(err) = refusal(
        raw.error.as_deref(),
        raw.permissions.is_some(),
        raw.status.as_deref(),
        raw.reason.as_deref(),
    ) {
        return Err(err);
    }
    let permissions = raw.permissions.ok_or_else(|| {
        decode_error(format!(
            "Kraken Futures' key check answer has no \"permissions\" (result {:?})",
            printable(raw.result.as_deref().unwrap_or_default())
        ))
    })?;
    let mut found = Vec::new();
    permission_names("", &permissions, &mut found)?;
    let created = raw
        .created_at
        .as_deref()
        .map(|text| {
            humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
                .map_err(|err| {
                    decode_error(format!(
                        "key check field \"createdAt\": {:?} is not a time ({err})",
                        printable(text)
                    ))
                })
                .map(|at| {
                    at.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                })
        })
        .transpose()?;
    let blocks: Vec<String> = raw
        .allowed_cidr_block
        .into_iter()
        .chain(raw.allowed_cidr_blocks.unwrap_or_default())
        .collect();
    Ok(KeyInfo {
        name: None,
        permissions: checked_names("key check permissions", found)?,
        created,
        allowlist: checked_names("key check allowedCidrBlocks", blocks)?,
        ..KeyInfo::default()
    })
}

/// The permission strings of `value` (see the module docs), `prefix` before each.
fn permission_names(prefix: &str, value: &Value, out: &mut Vec<String>) -> Result<(), PollError> {
    match value {
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(name) => out.push(format!("{prefix}{name}")),
                    other => permission_names(prefix, other, out)?,
                }
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                match member {
                    Value::Bool(true) => out.push(format!("{prefix}{name}")),
                    Value::Bool(false) | Value::Null => {}
                    Value::String(text) if text.trim().is_empty() => {}
                    Value::String(text) => out.push(format!("{prefix}{name}:{text}")),
                    Value::Number(number) => out.push(format!("{prefix}{name}:{number}")),
                    nested => permission_names(&format!("{prefix}{name}."), nested, out)?,
                }
                if out.len() > crate::kraken::api_key::MAX_ENTRIES {
                    break;
                }
            }
        }
        Value::String(name) => out.push(format!("{prefix}{name}")),
        other => {
            return Err(decode_error(format!(
                "key check permissions: unexpected {}",
                printable(&other.to_string())
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::error::ErrorReason;

    /// The documented answer's shape (docs.kraken.com, Futures "Check API key"), `permissions` filled
    /// in as an object since its shape is not documented.
    const DOCUMENTED: &str = r#"{"apiKey": "6HjxU...", "accountUid": "f7d5571c-6d10-4cf1-944a-048d25682ed0",
      "iiban": "AA00 ...", "createdAt": "2019-08-24T14:15:22Z",
      "permissions": {"general": "read_only", "withdrawal": false, "trade": {"futures": "full"}},
      "allowedCidrBlock": "192.168.0.0/16", "allowedCidrBlocks": ["192.168.0.0/16"]}"#;

    #[test]
    fn reads_the_documented_fields_and_never_the_identifiers() {
        let info = decode_key_check(DOCUMENTED.as_bytes()).unwrap();
        assert_eq!(
            info.permissions,
            vec!["general:read_only".to_string(), "trade.futures:full".into()]
        );
        assert_eq!(info.allowlist, vec!["192.168.0.0/16".to_string()]);
        assert!(info.ip_restricted());
        assert_eq!(info.created, Some(1_566_656_122));
        let text = format!("{info:?}");
        assert!(
            !text.contains("6HjxU") && !text.contains("f7d5571c") && !text.contains("AA00"),
            "{text}"
        );
    }

    #[test]
    fn a_list_of_strings_is_read_as_is_and_errors_keep_their_reason() {
        let info = decode_key_check(br#"{"permissions":["read"],"allowedCidrBlocks":[]}"#).unwrap();
        assert_eq!(info.permissions, vec!["read".to_string()]);
        assert!(!info.ip_restricted());
        let err =
            decode_key_check(br#"{"result":"error","error":"authenticationError"}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidKey);
        let err = decode_key_check(br#"{"status":"unauthorized","reason":"bad key"}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidKey);
        assert_eq!(
            decode_key_check(b"<html>").unwrap_err().reason,
            ErrorReason::Decode
        );
    }
}
