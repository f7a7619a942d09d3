//! Fuzzes configuration loading from the text of a TOML file: any text is either settings or one
//! error line, never a panic.
#![no_main]

use kraken_exporter::config::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let specs = kraken_exporter::collectors::option_specs();
    if let Err(error) = Settings::from_toml(Some(text), "fuzz", Default::default(), &specs) {
        assert!(!error.to_string().is_empty());
    }
});
