//! Serves a synthetic key zone of N domains (for benchmarks) and writes the same zone as a
//! master file, so another server (Knot, NSD) can serve exactly the same data.
//!
//! usage: synthetic DOMAINS PORT MASTER_FILE QUERY_FILE
//! Names and sizes are those signet publishes: per domain one 2048-bit RSA key record at
//! `selector1-<domain dashed>._domainkey.<tenant>.dkim.example.net`, 100 domains per tenant.
//! The query file (dnsperf format) asks each key once, plus 10% names that do not exist.

use std::fmt::Write as _;

use signet_dns_server::{DnsConfig, DnsServer, ZoneHandle};
use signet_zone::{Zone, ZoneSettings};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, domains, port, master, queries] = args.as_slice() else {
        eprintln!("usage: synthetic DOMAINS PORT MASTER_FILE QUERY_FILE");
        std::process::exit(2);
    };
    let domains: usize = domains.parse().expect("DOMAINS is a number");
    let port: u16 = port.parse().expect("PORT is a number");
    // A realistic record: v=DKIM1; k=rsa; p=<392 base64 characters of a 2048-bit SPKI>.
    let records: Vec<(String, String)> = (0..domains)
        .map(|i| {
            let name = format!(
                "selector1-customer{i}-example._domainkey.tenant{}.dkim.example.net",
                i / 100
            );
            let key: String = (0..392)
                .map(|j| {
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [(i * 7 + j * 13) % 64],
                    )
                })
                .collect();
            (name, format!("v=DKIM1; k=rsa; p={key}"))
        })
        .collect();
    let mut query_text = String::new();
    for (i, (name, _)) in records.iter().enumerate() {
        let _ = writeln!(query_text, "{name} TXT");
        if i % 10 == 0 {
            let _ = writeln!(
                query_text,
                "missing{i}._domainkey.tenant0.dkim.example.net TXT"
            );
        }
    }
    std::fs::write(queries, query_text).expect("query file written");
    let zone = Zone::new(ZoneSettings::new("dkim.example.net"), 1, records).expect("zone");
    std::fs::write(master, zone.to_master_file()).expect("master file written");
    // dnsperf asks from one address at full speed: response rate limiting off, as in the Knot
    // it is compared with; RRL=N in the environment measures the limiter's cost at a rate of N.
    let mut config = DnsConfig::new(([127, 0, 0, 1], port).into());
    config.limits.rrl_responses_per_second = std::env::var("RRL")
        .ok()
        .and_then(|rate| rate.parse().ok())
        .unwrap_or(0);
    let server = DnsServer::bind(&config).await.expect("bind");
    eprintln!("serving {domains} domains on 127.0.0.1:{port}");
    let (_stop, stop) = tokio::sync::watch::channel(false);
    server
        .run(ZoneHandle::new(zone), stop)
        .await
        .expect("serve");
}
