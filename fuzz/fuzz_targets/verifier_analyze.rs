//! The header analyzer on arbitrary bytes: never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let analysis = signet_verifier::analyze(data);
    let _ = analysis.render();
});
