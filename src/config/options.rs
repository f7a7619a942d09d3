//! The options of endpoints, which the configuration carries without knowing them: every key of an
//! `[[accounts]]` table (or of the top level) that is not one of the configuration's own lands in
//! [`Options`], and each endpoint reads, checks and describes its own keys ([`OptionSpec`], declared
//! on its line of the table of endpoints). A key no endpoint owns is refused as unknown, as serde
//! refuses an unknown core key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{err, AccountSettings, ConfigError, Settings};

/// An option as written in the file: `true`/`false`, a string, or anything else (kept as its text,
/// for the error that refuses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Flag(bool),
    Text(String),
    Other(String),
}

impl From<bool> for OptionValue {
    fn from(value: bool) -> Self {
        Self::Flag(value)
    }
}

impl From<&str> for OptionValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_string())
    }
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = OptionValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an option value")
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<OptionValue, E> {
                Ok(OptionValue::Flag(value))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OptionValue, E> {
                Ok(OptionValue::Text(value.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<OptionValue, E> {
                Ok(OptionValue::Other(value.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<OptionValue, E> {
                Ok(OptionValue::Other(value.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<OptionValue, E> {
                Ok(OptionValue::Other(value.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<OptionValue, E> {
                Ok(OptionValue::Other("nothing".to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OptionValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(OptionValue::Other("a list".to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OptionValue, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(OptionValue::Other("a table".to_string()))
            }
        }
        deserializer.deserialize_any(Any)
    }
}

/// The endpoint options of an account or of the top level, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Options(BTreeMap<String, OptionValue>);

impl Options {
    /// The same options with `key` set (the demo and the tests build accounts so).
    pub fn with(mut self, key: &str, value: impl Into<OptionValue>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    /// Sets `key`.
    pub fn set(&mut self, key: &str, value: impl Into<OptionValue>) {
        self.0.insert(key.to_string(), value.into());
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// `key` as `true` or `false`, if set; anything else is refused, naming the key (`at`: where).
    pub fn flag(&self, at: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(OptionValue::Flag(value)) => Ok(Some(*value)),
            Some(other) => Err(err(format!(
                "{}{key} = {} must be true or false (without quotes)",
                prefix(at),
                shown(other)
            ))),
        }
    }

    /// Whether `key` is `true` (`default` when not set; a value that is not a flag is not `true`,
    /// and was refused when the configuration was checked).
    pub fn is_on(&self, key: &str, default: bool) -> bool {
        self.flag("", key).ok().flatten().unwrap_or(default)
    }

    /// `key` as a string, if set; anything else is refused, naming the key.
    pub fn text(&self, at: &str, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(OptionValue::Text(text)) => Ok(Some(text)),
            Some(other) => Err(err(format!(
                "{}{key} = {} must be a string in quotes",
                prefix(at),
                shown(other)
            ))),
        }
    }

    /// `key` as a whole number in `range`, `default` when not set (written as a number, or as text
    /// when it comes from the environment).
    pub fn integer(
        &self,
        at: &str,
        key: &str,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<u32, ConfigError> {
        let text = match self.0.get(key) {
            None => return Ok(default),
            Some(OptionValue::Other(text) | OptionValue::Text(text)) => text.trim(),
            Some(other) => {
                return Err(err(format!(
                    "{}{key} = {} must be a whole number from {} to {}",
                    prefix(at),
                    shown(other),
                    range.start(),
                    range.end()
                )))
            }
        };
        match text.parse::<u32>() {
            Ok(value) if range.contains(&value) => Ok(value),
            _ => Err(err(format!(
                "{}{key} = {text} must be a whole number from {} to {} (default {default})",
                prefix(at),
                range.start(),
                range.end()
            ))),
        }
    }

    /// `key` as a duration between `shortest` and `longest`, `default` when not set.
    pub fn duration(
        &self,
        key: &str,
        default: Duration,
        shortest: Duration,
        longest: Duration,
    ) -> Result<Duration, ConfigError> {
        let text = self.text("", key)?.map(str::to_string);
        let duration = super::validate::bounded_duration(key, text, default, longest)?;
        if duration < shortest {
            return Err(err(format!(
                "{key} ({}) is below the minimum of {} (default {})",
                humantime::format_duration(duration),
                humantime::format_duration(shortest),
                humantime::format_duration(default)
            )));
        }
        Ok(duration)
    }
}

/// `at: ` before a message, or nothing for the top level.
fn prefix(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

fn shown(value: &OptionValue) -> String {
    match value {
        OptionValue::Flag(value) => value.to_string(),
        OptionValue::Text(text) => format!("{text:?}"),
        OptionValue::Other(text) => text.clone(),
    }
}

/// What an endpoint owns of the configuration: its keys in an account (`account_keys`) and at the
/// top level (`global_keys`), and the check of their values, which names the problem and what to do
/// (`at` is `account "name"`).
#[derive(Clone, Copy)]
pub struct OptionSpec {
    pub account_keys: &'static [&'static str],
    pub global_keys: &'static [&'static str],
    pub check: fn(&Settings, &AccountSettings, &str) -> Result<(), ConfigError>,
}

impl OptionSpec {
    /// No options.
    pub const NONE: OptionSpec = OptionSpec {
        account_keys: &[],
        global_keys: &[],
        check: |_, _, _| Ok(()),
    };
}

/// Refuses a key no endpoint owns, at the top level (`global`) or in an account, before anything
/// else is read (`where_` names the source), as serde refuses an unknown key of the configuration's.
pub(super) fn refuse_unknown<'a>(
    global: &Options,
    accounts: impl Iterator<Item = &'a Options>,
    specs: &[OptionSpec],
    where_: &str,
) -> Result<(), ConfigError> {
    let unknown = |key: &str| {
        err(format!(
            "unknown key {key:?} in {where_}; check the spelling against docs/configuration.md"
        ))
    };
    if let Some(key) = global
        .keys()
        .find(|key| !specs.iter().any(|s| s.global_keys.contains(key)))
    {
        return Err(unknown(key));
    }
    for options in accounts {
        if let Some(key) = options
            .keys()
            .find(|key| !specs.iter().any(|s| s.account_keys.contains(key)))
        {
            return Err(unknown(key));
        }
    }
    Ok(())
}

/// Lets each endpoint check its options in every account.
pub(super) fn check(settings: &Settings, specs: &[OptionSpec]) -> Result<(), ConfigError> {
    for account in &settings.accounts {
        let at = format!("account {:?}", account.name);
        for spec in specs {
            (spec.check)(settings, account, &at)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_strictly_and_named_in_errors() {
        let options = Options::default()
            .with("on", true)
            .with("text", "USD")
            .with("number", OptionValue::Other("1".into()));
        assert_eq!(options.flag("at", "on"), Ok(Some(true)));
        assert_eq!(options.flag("at", "missing"), Ok(None));
        let refused = options.flag("at", "text").unwrap_err();
        assert_eq!(
            refused.0,
            "at: text = \"USD\" must be true or false (without quotes)"
        );
        assert_eq!(options.text("", "text"), Ok(Some("USD")));
        assert!(options
            .text("", "number")
            .unwrap_err()
            .0
            .contains("number = 1"));
        assert!(!options.is_on("text", false) && options.is_on("missing", true));
        let pages = Options::default()
            .with("a", OptionValue::Other("3".into()))
            .with("b", "7")
            .with("c", OptionValue::Other("0".into()));
        assert_eq!(pages.integer("", "a", 1, 1..=20), Ok(3));
        assert_eq!(pages.integer("", "b", 1, 1..=20), Ok(7));
        assert_eq!(pages.integer("", "missing", 4, 1..=20), Ok(4));
        assert_eq!(
            pages.integer("", "c", 3, 1..=20).unwrap_err().0,
            "c = 0 must be a whole number from 1 to 20 (default 3)"
        );
        assert!(options
            .integer("at", "on", 3, 1..=20)
            .unwrap_err()
            .0
            .starts_with("at: on = true"));
    }
}
