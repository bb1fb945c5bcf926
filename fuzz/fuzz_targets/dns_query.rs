//! Any bytes sent to the key zone's server, over UDP (fast path, then general) or TCP: nothing
//! may panic, and whatever comes back must at least hold a DNS header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_dns_server::ZoneHandle;
use signet_dns_server::answer::{Transport, respond};
use signet_zone::{Zone, ZoneSettings};

fuzz_target!(|data: &[u8]| {
    let zone = Zone::new(
        ZoneSettings::new("dkim.example.net"),
        1,
        [("selector1-a-com._domainkey.t.dkim.example.net".to_string(), "v=DKIM1; k=rsa; p=AAAA".to_string())],
    )
    .expect("a valid zone");
    // UDP as the server runs it: the prepared fast path first, the general path otherwise.
    let served = ZoneHandle::new(zone.clone()).current();
    for message in served.respond_udp(data) {
        assert!(message.len() >= 12);
        assert!(message.len() <= 1232, "UDP answers fit the EDNS payload signet offers");
    }
    for transport in [Transport::Udp, Transport::Tcp { may_transfer: true }] {
        for message in respond(&zone, data, transport) {
            assert!(message.len() >= 12);
        }
    }
});
