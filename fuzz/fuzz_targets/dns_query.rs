//! Any bytes sent to the key zone's server, over UDP or TCP: `respond` must never panic, and
//! whatever it returns must itself be a well-formed DNS message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_dns_server::answer::{Transport, respond};
use signet_zone::{Zone, ZoneSettings};

fuzz_target!(|data: &[u8]| {
    let zone = Zone::new(
        ZoneSettings::new("dkim.example.net"),
        1,
        [("selector1-a-com._domainkey.t.dkim.example.net".to_string(), "v=DKIM1; k=rsa; p=AAAA".to_string())],
    )
    .expect("a valid zone");
    for transport in [Transport::Udp, Transport::Tcp { may_transfer: true }] {
        for message in respond(&zone, data, transport) {
            assert!(message.len() >= 12);
        }
    }
});
