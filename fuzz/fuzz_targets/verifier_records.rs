//! The `--records` file parser and the Public Suffix List parser: never panic.
#![no_main]

use signet_verifier::dns::{DnsAnswers, Kind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(table) = signet_verifier::RecordTable::parse(text) {
            let _ = table.answer("example.com", Kind::Txt);
        }
        let list = signet_verifier::PublicSuffixList::parse(text);
        let _ = list.organizational_domain("a.b.example.co.uk");
    }
});
