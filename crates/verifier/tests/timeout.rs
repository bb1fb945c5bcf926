//! A DNS timeout is `temperror`, never `fail` or `pass`: against a server that never answers,
//! and against a records table's `TIMEOUT`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use signet_verifier::{
    AuthResult, Envelope, RecordTable, Resolution, Verdict, Verifier, VerifierConfig, to_crlf,
};

/// The RFC 8463 A.3 message (two valid signatures when the keys can be fetched).
fn signed_message() -> Vec<u8> {
    let text = String::from_utf8(support::read("rfc-examples/rfc8463-appendix-A.txt")).unwrap();
    let start = text.find("== A.3").unwrap();
    let body = &text[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("\n== ").unwrap();
    to_crlf(format!("{}\n", body[..end].trim_end()).as_bytes()).into_owned()
}

fn envelope() -> Envelope {
    Envelope {
        client_ip: Some("192.0.2.1".parse().unwrap()),
        helo: Some("mail.football.example.com".into()),
        mail_from: Some("joe@football.example.com".into()),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_gives_temperror() {
    // Bound but silent: UDP queries vanish, TCP connections are accepted and never answered.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(address).await.unwrap();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = tcp.accept().await {
            open.push(stream);
        }
        drop(udp);
    });
    let mut config = VerifierConfig::new("mx.test", Resolution::Nameservers(vec![address]));
    config.timeout = Duration::from_millis(300);
    let verifier = Verifier::new(config).await.unwrap();
    let report = verifier.verify(&signed_message(), &envelope(), None).await;
    let results: Vec<AuthResult> = report.dkim.iter().map(|s| s.result).collect();
    assert_eq!(
        results,
        [AuthResult::TempError, AuthResult::TempError],
        "{:#?}",
        report.dkim
    );
    assert_eq!(
        report.spf.result,
        AuthResult::TempError,
        "{:#?}",
        report.spf
    );
    assert_eq!(
        report.dmarc.result,
        AuthResult::TempError,
        "{:#?}",
        report.dmarc
    );
    assert_eq!(report.verdict, Verdict::TempError);
    assert!(report.authentication_results.contains("dkim=temperror"));
}

#[tokio::test]
async fn a_timeout_entry_gives_temperror_for_that_lookup_only() {
    let mut table = RecordTable::parse(
        "brisbane._domainkey.football.example.com TXT TIMEOUT\n\
         test._domainkey.football.example.com TXT v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n",
    )
    .unwrap();
    table.insert_txt("football.example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    let mut config = VerifierConfig::new("mx.test", Resolution::Answers(Arc::new(table)));
    config.timeout = Duration::from_millis(300);
    let verifier = Verifier::new(config).await.unwrap();
    let report = verifier.verify(&signed_message(), &envelope(), None).await;
    let results: Vec<AuthResult> = report.dkim.iter().map(|s| s.result).collect();
    assert_eq!(
        results,
        [AuthResult::TempError, AuthResult::Pass],
        "{:#?}",
        report.dkim
    );
    assert!(
        report.dkim[0].reason.contains("try again"),
        "{}",
        report.dkim[0].reason
    );
    assert_eq!(report.spf.result, AuthResult::Pass);
    // The RSA signature passes and aligns; no DMARC record: the message is authenticated.
    assert_eq!(report.verdict, Verdict::Pass);
}
