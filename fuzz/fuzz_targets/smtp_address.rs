//! The envelope address parser on arbitrary text: never panics, and every path it accepts is
//! written back so that it parses as the same path, within RFC 5321's lengths, with no `>`,
//! space or control character outside a quoted string (so nothing a client quoted can end the
//! path or add a parameter at the next hop). `Mailbox::new` on an arbitrary local part keeps
//! the same promise.
//!
//! Run: `bash fuzz/run.sh smtp_address` (or `cargo +nightly fuzz run smtp_address` here).

#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_smtp::address::{Domain, MAX_PATH, Mailbox, Path};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok((path, rest)) = Path::parse(text) {
        assert!(text.ends_with(rest));
        let written = format!("<{path}>");
        assert!(written.len() <= MAX_PATH, "{written}");
        check_quoting(&written[1..written.len() - 1]);
        assert_eq!(Path::parse(&written), Ok((path, "")), "{written}");
    }
    if let Ok(mailbox) = Mailbox::new(text, Domain::Name("example.org".into())) {
        let written = mailbox.to_string();
        check_quoting(&written);
        assert_eq!(written.parse::<Mailbox>(), Ok(mailbox), "{written}");
    }
});

/// Nothing outside a quoted string that could end a path or start a parameter.
fn check_quoting(written: &str) {
    let mut quoted = false;
    let mut escaped = false;
    for c in written.chars() {
        assert!(!c.is_control(), "{written:?}");
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' | ' ' | '<' if !quoted => panic!("{written:?}"),
            _ => {}
        }
    }
    assert!(!quoted, "{written:?}");
}
