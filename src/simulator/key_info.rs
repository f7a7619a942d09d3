//! What the simulated keys say of themselves: `GetApiKeyInfo` in Kraken's documented shape (with the
//! key and an IBAN in it, as Kraken's carries them, so tests can prove neither leaks) and the futures
//! key check in its documented shape, `permissions` as an object.

use std::time::{SystemTime, UNIX_EPOCH};

/// A key's permissions and settings, as both simulated endpoints answer them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimKeyInfo {
    pub name: String,
    /// Kraken's strings (`query-funds`), or for a futures key `name:value` pairs (`general:read_only`)
    /// written as the members of `permissions`.
    pub permissions: Vec<String>,
    /// Unix seconds; 0: never.
    pub valid_until: u64,
    pub query_from: u64,
    pub query_to: u64,
    pub nonce_window: u64,
    pub created: u64,
    pub modified: u64,
    pub allowlist: Vec<String>,
}

/// The IBAN every simulated spot key's account has (never to be seen outside the answer).
pub const SIM_IBAN: &str = "AA88 N84G WOAK NMOI";

impl SimKeyInfo {
    /// What the README asks users to create: a key that may only query funds.
    pub fn query_only() -> Self {
        Self {
            name: "kraken-exporter".to_string(),
            permissions: vec!["query-funds".to_string()],
            valid_until: 0,
            query_from: 0,
            query_to: 0,
            nonce_window: 0,
            created: 1_772_542_900,
            modified: 1_772_543_095,
            allowlist: Vec::new(),
        }
    }

    /// A futures key with read-only general access.
    pub fn futures_read_only() -> Self {
        Self {
            permissions: vec!["general:read_only".to_string()],
            ..Self::query_only()
        }
    }

    /// The same key named `name` (on Kraken's key page).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The same key with `permissions`.
    pub fn with_permissions(mut self, permissions: &[&str]) -> Self {
        self.permissions = permissions.iter().map(|p| p.to_string()).collect();
        self
    }

    /// `GetApiKeyInfo`'s answer for `api_key`.
    pub(super) fn render_spot(&self, api_key: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        serde_json::json!({"error": [], "result": {
            "apiKeyName": self.name, "apiKey": api_key, "nonce": (now * 1000).to_string(),
            "nonceWindow": self.nonce_window, "permissions": self.permissions, "iban": SIM_IBAN,
            "validUntil": self.valid_until.to_string(), "queryFrom": self.query_from.to_string(),
            "queryTo": self.query_to.to_string(), "createdTime": self.created.to_string(),
            "modifiedTime": self.modified.to_string(), "ipAllowlist": self.allowlist,
            "lastUsed": now.to_string()}})
        .to_string()
    }

    /// The futures key check's answer for `api_key`.
    pub(super) fn render_futures(&self, api_key: &str) -> String {
        let permissions: serde_json::Map<String, serde_json::Value> = self
            .permissions
            .iter()
            .map(|p| match p.split_once(':') {
                Some((name, value)) => (name.to_string(), serde_json::json!(value)),
                None => (p.clone(), serde_json::json!(true)),
            })
            .collect();
        let created = humantime::format_rfc3339_seconds(
            UNIX_EPOCH + std::time::Duration::from_secs(self.created),
        );
        serde_json::json!({"apiKey": api_key, "accountUid": "f7d5571c-6d10-4cf1-944a-048d25682ed0",
            "iiban": SIM_IBAN, "createdAt": created.to_string(), "permissions": permissions,
            "allowedCidrBlock": self.allowlist.first(), "allowedCidrBlocks": self.allowlist})
        .to_string()
    }
}
