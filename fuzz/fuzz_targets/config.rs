//! The config file: any text is either a valid configuration or one clear error line.
#![no_main]

use certadns_ddns::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(error) = Config::from_toml(text) {
        assert!(!error.to_string().contains('\n'), "one line: {error}");
    }
});
