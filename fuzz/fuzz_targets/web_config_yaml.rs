//! Fuzzes the `--web.config.file` parser (YAML, basic auth hashes, headers, TLS settings).
#![no_main]

use kraken_exporter::http::web_config::WebConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = WebConfig::from_yaml(text, std::path::Path::new("/nonexistent/web.yml"));
});
