//! The Authentication-Results parser on arbitrary text: never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signet_verifier::analyze::parse_auth_results(text, false);
        let _ = signet_verifier::analyze::parse_auth_results(text, true);
    }
});
