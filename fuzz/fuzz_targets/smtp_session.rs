//! The command parser and the whole session state machine on arbitrary client bytes: never
//! panics, every reply is well formed, every address it hands over is written back as itself,
//! and every message it hands over has CRLF line endings only (no smuggled end of data).
//!
//! Run: `cargo +nightly fuzz run smtp_session` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_smtp::data::check_text;
use signet_smtp::{AuthAvailability, Event, Mailbox, Reply, Session, SessionConfig};

fuzz_target!(|input: &[u8]| {
    let Some((&settings, input)) = input.split_first() else {
        return;
    };
    let config = SessionConfig {
        max_message_size: 2048,
        max_recipients: 3,
        max_errors: 20,
        starttls: settings & 1 != 0,
        auth: match settings >> 1 & 3 {
            0 => AuthAvailability::Disabled,
            1 => AuthAvailability::AfterTls,
            _ => AuthAvailability::Always,
        },
        chunking: settings & 8 != 0,
        ..SessionConfig::default()
    };
    let chunk = usize::from(settings >> 4) + 1;
    let mut session = Session::new(config);
    let mut questions = 0u32;
    for piece in input.chunks(chunk) {
        session.receive(piece);
        while let Some(event) = session.poll() {
            match &event {
                Event::Reply(reply) => check_reply(reply),
                Event::StartTls => session.tls_established(),
                Event::Close => return,
                Event::Message(message) => {
                    assert!(check_text(&message.data).is_ok());
                    assert!(!message.recipients.is_empty());
                    session.accept_message("0123456789abcdef");
                }
                Event::Sender(_) | Event::Recipient(_) | Event::Authenticate(_) => {
                    check_address(&event);
                    questions += 1;
                    if questions % 3 == 0 {
                        session.reject(Reply::new(550, [5, 7, 1], "no"));
                    } else {
                        session.accept();
                    }
                }
            }
        }
    }
});

fn check_reply(reply: &Reply) {
    let text = reply.to_string();
    assert!(text.ends_with("\r\n"));
    let lines = text.split_terminator("\r\n").count();
    assert_eq!(lines, reply.lines().len());
    assert!(
        !text
            .trim_end_matches("\r\n")
            .replace("\r\n", "")
            .contains(['\r', '\n'])
    );
}

/// A sender or recipient mailbox parses back from what it writes.
fn check_address(event: &Event) {
    let mailbox = match event {
        Event::Sender(sender) => sender.address.as_ref(),
        Event::Recipient(recipient) => Some(&recipient.address),
        _ => None,
    };
    if let Some(mailbox) = mailbox {
        assert_eq!(mailbox.to_string().parse::<Mailbox>().as_ref(), Ok(mailbox));
    }
}
