//! Whole-message verification (DKIM, ARC and DMARC parsing paths) on arbitrary bytes, with an
//! offline DNS table that knows nothing: never panics; every DKIM result carries a reason.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signet_verifier::{Envelope, RecordTable, Resolution, Verifier, VerifierConfig};

fn runtime() -> &'static (tokio::runtime::Runtime, Verifier) {
    static STATE: OnceLock<(tokio::runtime::Runtime, Verifier)> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = VerifierConfig::new(
            "fuzz.test",
            Resolution::Answers(Arc::new(RecordTable::default())),
        );
        config.timeout = Duration::from_millis(50);
        let verifier = runtime.block_on(Verifier::new(config)).unwrap();
        (runtime, verifier)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (runtime, verifier) = runtime();
    let report = runtime.block_on(verifier.verify(data, &Envelope::default(), None));
    assert!(report.dkim.iter().all(|s| !s.reason.is_empty()));
});
