//! Session tests: one exchange per case, bytes in, replies and questions out.

use super::*;

/// What one exchange produced.
#[derive(Debug, Default)]
struct Outcome {
    replies: Vec<String>,
    senders: Vec<MailFrom>,
    recipients: Vec<String>,
    credentials: Vec<Credentials>,
    messages: Vec<ReceivedMessage>,
    starttls: bool,
    closed: bool,
}

impl Outcome {
    fn codes(&self) -> Vec<u16> {
        self.replies
            .iter()
            .map(|reply| reply[..3].parse().unwrap())
            .collect()
    }

    fn last(&self) -> &str {
        self.replies.last().map_or("", String::as_str)
    }
}

/// Feeds `input` and answers each question with `decide` (`None` accepts).
fn exchange_with(
    session: &mut Session,
    input: &[u8],
    mut decide: impl FnMut(&Event) -> Option<Reply>,
) -> Outcome {
    session.receive(input);
    let mut outcome = Outcome::default();
    while let Some(event) = session.poll() {
        let verdict = decide(&event);
        match event {
            Event::Reply(reply) => {
                outcome.replies.push(reply.to_string());
                continue;
            }
            Event::StartTls => {
                outcome.starttls = true;
                continue;
            }
            Event::Close => {
                outcome.closed = true;
                continue;
            }
            Event::Sender(sender) => outcome.senders.push(sender),
            Event::Recipient(recipient) => outcome.recipients.push(recipient.address.to_string()),
            Event::Authenticate(credentials) => outcome.credentials.push(credentials),
            Event::Message(message) => {
                outcome.messages.push(message);
                if verdict.is_none() {
                    session.accept_message("0123456789abcdef");
                    continue;
                }
            }
        }
        match verdict {
            None => session.accept(),
            Some(reply) => session.reject(reply),
        }
    }
    outcome
}

fn exchange(session: &mut Session, input: &[u8]) -> Outcome {
    exchange_with(session, input, |_| None)
}

fn session_with(config: SessionConfig) -> Session {
    let mut session = Session::new(config);
    let greeting = exchange(&mut session, b"");
    assert_eq!(greeting.replies, ["220 localhost ESMTP signet\r\n"]);
    session
}

fn session() -> Session {
    session_with(SessionConfig::default())
}

/// A session that has said EHLO.
fn greeted(config: SessionConfig) -> Session {
    let mut session = session_with(config);
    assert_eq!(
        exchange(&mut session, b"EHLO client.example\r\n").codes(),
        [250]
    );
    session
}

const ENVELOPE: &[u8] = b"MAIL FROM:<joe@example.com>\r\nRCPT TO:<ann@example.net>\r\n";

#[test]
fn ehlo_advertises_the_extensions() {
    let mut session = session();
    let outcome = exchange(&mut session, b"EHLO client.example\r\n");
    assert_eq!(
        outcome.replies,
        [
            "250-localhost\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n\
          250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
        ]
    );
    assert_eq!(session.helo(), Some("client.example"));
}

#[test]
fn ehlo_offers_starttls_and_auth_when_configured() {
    let config = SessionConfig {
        starttls: true,
        auth: AuthAvailability::Always,
        ..SessionConfig::default()
    };
    let outcome = exchange(&mut session_with(config), b"EHLO c\r\n");
    assert!(
        outcome
            .last()
            .contains("250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
    );
    let after_tls = SessionConfig {
        auth: AuthAvailability::AfterTls,
        ..SessionConfig::default()
    };
    let outcome = exchange(&mut session_with(after_tls), b"EHLO c\r\n");
    assert!(!outcome.last().contains("AUTH"), "AUTH offered before TLS");
}

#[test]
fn helo_replies_plainly_and_refuses_esmtp_parameters() {
    let mut session = session();
    let outcome = exchange(
        &mut session,
        b"HELO client.example\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nMAIL FROM:<a@b.example>\r\n",
    );
    assert_eq!(outcome.replies[0], "250 localhost\r\n");
    assert!(outcome.replies[1].starts_with("555 5.5.4 "));
    assert!(outcome.replies[2].starts_with("250 2.1.0 "));
}

#[test]
fn a_whole_transaction() {
    let mut session = greeted(SessionConfig::default());
    let outcome = exchange(
        &mut session,
        b"MAIL FROM:<joe@example.com> SIZE=100 BODY=8BITMIME\r\n",
    );
    assert_eq!(outcome.replies, ["250 2.1.0 Sender ok\r\n"]);
    assert_eq!(
        outcome.senders,
        [MailFrom {
            address: Some("joe@example.com".parse().unwrap()),
            size: Some(100),
            body: Body::EightBitMime,
            smtputf8: false,
        }]
    );
    let outcome = exchange(&mut session, b"RCPT TO:<ann@example.net>\r\n");
    assert_eq!(outcome.replies, ["250 2.1.5 Recipient ok\r\n"]);
    let outcome = exchange(&mut session, b"RCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert_eq!(outcome.codes(), [250, 354]);
    assert_eq!(
        outcome.replies[1],
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    assert!(session.is_reading_data());
    let outcome = exchange(&mut session, b"Subject: hi\r\n\r\n..dots\r\n.\r\n");
    assert_eq!(
        outcome.replies,
        ["250 2.0.0 Ok: queued as 0123456789abcdef\r\n"]
    );
    let message = &outcome.messages[0];
    assert_eq!(message.helo, "client.example");
    assert_eq!(
        message.sender.address.as_ref().unwrap().to_string(),
        "joe@example.com"
    );
    let recipients: Vec<String> = message
        .recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(recipients, ["ann@example.net", "bob@example.org"]);
    assert_eq!(message.data, b"Subject: hi\r\n\r\n.dots\r\n");
    // The transaction is over: a new one can start.
    assert_eq!(exchange(&mut session, ENVELOPE).codes(), [250, 250]);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut session = session();
    let outcome = exchange(
        &mut session,
        b"EHLO c\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\n\
          RCPT TO:<b@example.net>\r\nDATA\r\nhello\r\n.\r\nMAIL FROM:<joe@example.com>\r\n\
          RSET\r\nNOOP\r\nQUIT\r\n",
    );
    assert_eq!(
        outcome.codes(),
        [250, 250, 250, 250, 354, 250, 250, 250, 250, 221]
    );
    assert_eq!(outcome.messages.len(), 1);
    assert_eq!(outcome.messages[0].data, b"hello\r\n");
    assert!(outcome.closed);
}

#[test]
fn pipelined_commands_wait_for_the_answer() {
    let mut session = greeted(SessionConfig::default());
    session.receive(b"MAIL FROM:<joe@example.com>\r\nNOOP\r\n");
    assert!(matches!(session.poll(), Some(Event::Sender(_))));
    assert!(
        session.poll().is_none(),
        "NOOP answered before the sender decision"
    );
    session.accept();
    let outcome = exchange(&mut session, b"");
    assert_eq!(outcome.codes(), [250, 250]);
}

#[test]
fn the_same_replies_whatever_the_segmentation() {
    let input: &[u8] = b"EHLO c\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<a@example.net>\r\n\
        DATA\r\nSubject: x\r\n\r\n.line\r\nbare\nLF\r\n.\r\nBDAT 4 LAST\r\nab\r\nNOOP\r\nQUIT\r\n";
    let whole = exchange(&mut Session::new(SessionConfig::default()), input);
    let mut session = Session::new(SessionConfig::default());
    let mut bytewise = Outcome::default();
    for byte in input {
        let outcome = exchange(&mut session, std::slice::from_ref(byte));
        bytewise.replies.extend(outcome.replies);
    }
    assert_eq!(bytewise.replies, whole.replies);
    assert_eq!(
        whole.codes(),
        [220, 250, 250, 250, 354, 554, 503, 250, 221],
        "{:?}",
        whole.replies
    );
}

#[test]
fn commands_out_of_sequence() {
    let mut session = session();
    let cases: &[(&[u8], &str)] = &[
        (b"MAIL FROM:<a@b.example>\r\n", "503 5.5.1 "),
        (b"EHLO c\r\n", "250-"),
        (b"RCPT TO:<a@b.example>\r\n", "503 5.5.1 "),
        (b"DATA\r\n", "503 5.5.1 "),
        (b"MAIL FROM:<a@b.example>\r\n", "250 2.1.0 "),
        (b"MAIL FROM:<a@b.example>\r\n", "503 5.5.1 "),
        (b"DATA\r\n", "554 5.5.1 "),
        (b"RSET\r\n", "250 2.0.0 "),
        (b"RCPT TO:<a@b.example>\r\n", "503 5.5.1 "),
    ];
    for (input, expected) in cases {
        let outcome = exchange(&mut session, input);
        assert!(
            outcome.last().starts_with(expected),
            "{:?} got {:?}",
            String::from_utf8_lossy(input),
            outcome.replies
        );
    }
}

#[test]
fn simple_commands() {
    let mut session = greeted(SessionConfig::default());
    let cases: &[(&[u8], &str)] = &[
        (b"NOOP\r\n", "250 2.0.0 Ok\r\n"),
        (b"VRFY joe\r\n", "252 2.5.0 "),
        (b"HELP\r\n", "214 2.0.0 "),
        (b"EXPN list\r\n", "502 5.5.1 "),
        (b"ETRN example.com\r\n", "502 5.5.1 "),
        (b"LHLO c\r\n", "502 5.5.1 "),
        (b"FOO bar\r\n", "500 5.5.2 "),
        (b"MAIL FROM:joe@example.com\r\n", "501 5.5.4 "),
        (b"RCPT TO:<>\r\n", "503 5.5.1 "),
        (b"quit\r\n", "221 2.0.0 Bye\r\n"),
    ];
    for (input, expected) in cases {
        let outcome = exchange(&mut session, input);
        assert!(
            outcome.last().starts_with(expected),
            "{:?} got {:?}",
            String::from_utf8_lossy(input),
            outcome.replies
        );
    }
    assert!(session.is_closed());
    assert!(exchange(&mut session, b"NOOP\r\n").replies.is_empty());
}

#[test]
fn the_null_sender_is_accepted() {
    let mut session = greeted(SessionConfig::default());
    let outcome = exchange(&mut session, b"MAIL FROM:<>\r\n");
    assert_eq!(outcome.codes(), [250]);
    assert_eq!(outcome.senders[0].address, None);
}

#[test]
fn too_many_errors_close_the_session() {
    let config = SessionConfig {
        max_errors: 3,
        ..SessionConfig::default()
    };
    let mut session = session_with(config);
    let outcome = exchange(&mut session, b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
    assert_eq!(outcome.codes(), [500, 500, 500, 421]);
    assert!(outcome.last().starts_with("421 4.7.0 "));
    assert!(outcome.closed);
}

#[test]
fn command_line_length_limit() {
    let mut session = greeted(SessionConfig::default());
    // 512 octets with CRLF is allowed, 513 is not.
    let mut longest = b"NOOP ".to_vec();
    longest.resize(510, b'x');
    longest.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&mut session, &longest).codes(), [250]);
    let mut too_long = b"NOOP ".to_vec();
    too_long.resize(511, b'x');
    too_long.extend_from_slice(b"\r\n");
    let outcome = exchange(&mut session, &too_long);
    assert_eq!(outcome.replies, ["500 5.5.2 Line too long\r\n"]);
    // A very long line arriving in pieces is skipped up to its end, then answered once.
    let mut outcome = exchange(&mut session, &[b'x'; 4000]);
    assert!(outcome.replies.is_empty());
    outcome = exchange(&mut session, &[b'y'; 4000]);
    assert!(outcome.replies.is_empty());
    outcome = exchange(&mut session, b"zz\r\nNOOP\r\n");
    assert_eq!(outcome.codes(), [500, 250]);
}

#[test]
fn command_lines_need_crlf() {
    let mut session = greeted(SessionConfig::default());
    let outcome = exchange(&mut session, b"NOOP\nNOOP\r\nNO\rOP\r\n");
    assert_eq!(outcome.codes(), [500, 250, 500]);
}

#[test]
fn mail_parameters() {
    let config = SessionConfig {
        max_message_size: 1000,
        ..SessionConfig::default()
    };
    let mut session = greeted(config);
    let cases: &[(&[u8], &str)] = &[
        (b"MAIL FROM:<a@b.example> SIZE=1001\r\n", "552 5.3.4 "),
        (b"MAIL FROM:<a@b.example> RET=FULL\r\n", "555 5.5.4 "),
        (b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n", "555 5.5.4 "),
        (b"MAIL FROM:<a@b.example> FOO=BAR\r\n", "555 5.5.4 "),
        ("MAIL FROM:<jöe@b.example>\r\n".as_bytes(), "553 5.6.7 "),
        (
            b"MAIL FROM:<a@b.example> SIZE=1000 AUTH=<>\r\n",
            "250 2.1.0 ",
        ),
        (b"RSET\r\n", "250 2.0.0 "),
        (
            "MAIL FROM:<jöe@b.example> SMTPUTF8\r\n".as_bytes(),
            "250 2.1.0 ",
        ),
        ("RCPT TO:<änn@b.example>\r\n".as_bytes(), "250 2.1.5 "),
        (b"RCPT TO:<x@b.example> NOTIFY=NEVER\r\n", "555 5.5.4 "),
    ];
    for (input, expected) in cases {
        let outcome = exchange(&mut session, input);
        assert!(
            outcome.last().starts_with(expected),
            "{:?} got {:?}",
            String::from_utf8_lossy(input),
            outcome.replies
        );
    }
}

#[test]
fn recipient_limit() {
    let config = SessionConfig {
        max_recipients: 2,
        ..SessionConfig::default()
    };
    let mut session = greeted(config);
    let outcome = exchange(
        &mut session,
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<1@c.example>\r\nRCPT TO:<2@c.example>\r\n\
          RCPT TO:<3@c.example>\r\n",
    );
    assert_eq!(outcome.codes(), [250, 250, 250, 452]);
    assert!(outcome.last().starts_with("452 4.5.3 "));
    assert_eq!(outcome.recipients, ["1@c.example", "2@c.example"]);
}

#[test]
fn policy_refusals() {
    let mut session = greeted(SessionConfig::default());
    let refuse_example_net = |event: &Event| match event {
        Event::Recipient(recipient) if recipient.address.domain().as_str() == "example.net" => {
            Some(Reply::new(550, [5, 7, 1], "Relaying denied"))
        }
        Event::Sender(sender)
            if sender
                .address
                .as_ref()
                .is_some_and(|a| a.local_part() == "spam") =>
        {
            Some(Reply::new(550, [5, 7, 1], "Sender domain not accepted"))
        }
        _ => None,
    };
    let outcome = exchange_with(
        &mut session,
        b"MAIL FROM:<spam@x.example>\r\nRCPT TO:<a@example.net>\r\nMAIL FROM:<joe@example.com>\r\n\
          RCPT TO:<a@example.net>\r\nDATA\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n",
        refuse_example_net,
    );
    assert_eq!(outcome.codes(), [550, 503, 250, 550, 554, 250, 354, 250]);
    let recipients: Vec<String> = outcome.messages[0]
        .recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(recipients, ["b@example.org"]);
}

#[test]
fn a_refused_message_ends_the_transaction() {
    let mut session = greeted(SessionConfig::default());
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"DATA\r\nx\r\n.\r\nRCPT TO:<b@example.org>\r\n");
    let outcome = exchange_with(&mut session, &input, |event| {
        matches!(event, Event::Message(_)).then(|| Reply::new(451, [4, 3, 0], "try later"))
    });
    assert_eq!(outcome.codes(), [250, 250, 354, 451, 503]);
}

#[test]
fn a_421_answer_closes() {
    let mut session = greeted(SessionConfig::default());
    let outcome = exchange_with(&mut session, b"MAIL FROM:<a@b.example>\r\nNOOP\r\n", |_| {
        Some(Reply::new(421, [4, 3, 2], "shutting down"))
    });
    assert_eq!(outcome.codes(), [421]);
    assert!(outcome.closed);
}

/// The SMTP smuggling variants, sent through a whole session: a message that contains one is
/// refused after the real end of data, the smuggled commands are never run, and the session
/// stays in step (the next command gets its own answer).
#[test]
fn smuggling_never_makes_a_second_message() {
    let variants: &[&[u8]] = &[
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r.\n",
        b"\r\n.\r\r\n",
    ];
    for variant in variants {
        let mut session = greeted(SessionConfig::default());
        let mut input = ENVELOPE.to_vec();
        input.extend_from_slice(b"DATA\r\nSubject: first\r\n\r\nbody");
        input.extend_from_slice(variant);
        input.extend_from_slice(
            b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\
              Subject: forged\r\n\r\nsmuggled\r\n.\r\nNOOP\r\n",
        );
        let outcome = exchange(&mut session, &input);
        assert!(
            outcome.messages.is_empty(),
            "variant {variant:?} made a message"
        );
        assert_eq!(
            outcome.senders.len(),
            1,
            "variant {variant:?} ran a smuggled MAIL"
        );
        assert_eq!(
            outcome.codes(),
            [250, 250, 354, 554, 250],
            "variant {variant:?}"
        );
        assert!(outcome.replies[3].starts_with("554 5.6.0 Bare CR or LF"));
    }
}

/// Smuggling that hides behind a character after the dot (`.\0`) is one message, whole.
#[test]
fn a_dot_with_a_tail_is_content() {
    let mut session = greeted(SessionConfig::default());
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"DATA\r\nbody\r\n.\0\r\nMAIL FROM:<admin@bank.example>\r\n.\r\n");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.messages.len(), 1);
    assert_eq!(outcome.senders.len(), 1);
    assert_eq!(
        outcome.messages[0].data,
        b"body\r\n\0\r\nMAIL FROM:<admin@bank.example>\r\n"
    );
}

#[test]
fn message_size_limit_in_data() {
    let config = SessionConfig {
        max_message_size: 10,
        ..SessionConfig::default()
    };
    let mut session = greeted(config);
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"DATA\r\n0123456789abc\r\n.\r\nNOOP\r\n");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.codes(), [250, 250, 354, 552, 250]);
    assert!(outcome.messages.is_empty());
}

#[test]
fn bdat_chunks_make_one_message() {
    let mut session = greeted(SessionConfig::default());
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"BDAT 14\r\nSubject: x\r\n\r\nBDAT 8 LAST\r\nbody\r\n\r\nNOOP\r\n");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.codes(), [250, 250, 250, 250, 250]);
    assert_eq!(outcome.replies[2], "250 2.0.0 14 octets received\r\n");
    assert_eq!(outcome.messages[0].data, b"Subject: x\r\n\r\nbody\r\n\r\n");
}

#[test]
fn bdat_chunks_are_read_even_when_refused() {
    let mut session = greeted(SessionConfig::default());
    // No MAIL: the chunk (which looks like commands) is read and dropped, then refused.
    let outcome = exchange(
        &mut session,
        b"BDAT 25\r\nMAIL FROM:<evil@x.test>\r\nNOOP\r\n",
    );
    assert_eq!(outcome.codes(), [503, 250]);
    assert!(outcome.senders.is_empty());
    let outcome = exchange(
        &mut session,
        b"MAIL FROM:<a@b.example>\r\nBDAT 3 LAST\r\nabcNOOP\r\n",
    );
    assert_eq!(outcome.codes(), [250, 554, 250]);
}

#[test]
fn bdat_refusals() {
    let config = SessionConfig {
        max_message_size: 10,
        ..SessionConfig::default()
    };
    let mut session = greeted(config);
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"BDAT 8\r\n12345678BDAT 8 LAST\r\n12345678");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.codes(), [250, 250, 250, 552]);
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"BDAT 4 LAST\r\na\nb\n");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.codes(), [250, 250, 554]);
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"BDAT 3\r\nabcDATA\r\n");
    let outcome = exchange(&mut session, &input);
    assert_eq!(outcome.codes(), [250, 250, 250, 503]);
}

#[test]
fn bdat_is_refused_when_chunking_is_off() {
    let config = SessionConfig {
        chunking: false,
        ..SessionConfig::default()
    };
    let mut session = greeted(config);
    let mut input = ENVELOPE.to_vec();
    input.extend_from_slice(b"BDAT 4 LAST\r\nabcdNOOP\r\n");
    assert_eq!(exchange(&mut session, &input).codes(), [250, 250, 502, 250]);
}

fn auth_config(auth: AuthAvailability) -> SessionConfig {
    SessionConfig {
        auth,
        starttls: true,
        ..SessionConfig::default()
    }
}

#[test]
fn auth_plain() {
    let mut session = greeted(auth_config(AuthAvailability::Always));
    // "\0user\0secret"
    let outcome = exchange(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_eq!(outcome.replies, ["235 2.7.0 Authentication successful\r\n"]);
    let credentials = &outcome.credentials[0];
    assert_eq!(credentials.mechanism, AuthMechanism::Plain);
    assert_eq!(credentials.authorization_id, None);
    assert_eq!(credentials.username, "user");
    assert_eq!(credentials.password.as_str(), "secret");
    assert!(session.is_authenticated());
    assert!(!format!("{credentials:?}").contains("secret"));
    assert_eq!(
        exchange(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n").codes(),
        [503]
    );
}

#[test]
fn auth_plain_with_a_challenge_and_an_authorization_id() {
    let mut session = greeted(auth_config(AuthAvailability::Always));
    let outcome = exchange(&mut session, b"AUTH PLAIN\r\n");
    assert_eq!(outcome.replies, ["334 \r\n"]);
    // "admin\0user\0secret"
    let outcome = exchange(&mut session, b"YWRtaW4AdXNlcgBzZWNyZXQ=\r\n");
    assert_eq!(outcome.codes(), [235]);
    assert_eq!(
        outcome.credentials[0].authorization_id.as_deref(),
        Some("admin")
    );
}

#[test]
fn auth_login() {
    let mut session = greeted(auth_config(AuthAvailability::Always));
    let outcome = exchange(&mut session, b"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\n");
    assert_eq!(
        outcome.replies,
        [
            "334 VXNlcm5hbWU6\r\n",
            "334 UGFzc3dvcmQ6\r\n",
            "235 2.7.0 Authentication successful\r\n"
        ]
    );
    assert_eq!(outcome.credentials[0].mechanism, AuthMechanism::Login);
    assert_eq!(outcome.credentials[0].username, "user");
    assert_eq!(outcome.credentials[0].password.as_str(), "secret");

    let mut session = greeted(auth_config(AuthAvailability::Always));
    let outcome = exchange(&mut session, b"AUTH LOGIN dXNlcg==\r\nc2VjcmV0\r\n");
    assert_eq!(outcome.codes(), [334, 235]);
}

#[test]
fn auth_failures() {
    let mut session = greeted(auth_config(AuthAvailability::Always));
    let cases: &[(&[u8], &str)] = &[
        (b"AUTH PLAIN\r\n*\r\n", "501 5.0.0 "),
        (b"AUTH PLAIN !!!\r\n", "501 5.5.2 "),
        (b"AUTH PLAIN dXNlcg==\r\n", "501 5.5.2 "),
        (b"AUTH PLAIN =\r\n", "501 5.5.2 "),
        (b"AUTH LOGIN\r\n=\r\n", "501 5.5.2 "),
        (b"AUTH CRAM-MD5\r\n", "504 5.5.4 "),
    ];
    for (input, expected) in cases {
        let outcome = exchange(&mut session, input);
        assert!(
            outcome.last().starts_with(expected),
            "{:?} got {:?}",
            String::from_utf8_lossy(input),
            outcome.replies
        );
    }
    let outcome = exchange_with(&mut session, b"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n", |_| {
        Some(Reply::new(
            535,
            [5, 7, 8],
            "Authentication credentials invalid",
        ))
    });
    assert_eq!(outcome.codes(), [535]);
    assert!(!session.is_authenticated());
    let outcome = exchange(
        &mut session,
        b"MAIL FROM:<a@b.example>\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n",
    );
    assert_eq!(outcome.codes(), [250, 503]);
}

#[test]
fn auth_needs_tls_or_configuration() {
    let mut session = greeted(auth_config(AuthAvailability::AfterTls));
    let outcome = exchange(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert!(outcome.last().starts_with("538 5.7.11 "));
    assert!(outcome.credentials.is_empty());
    let mut session = greeted(auth_config(AuthAvailability::Disabled));
    let outcome = exchange(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert!(outcome.last().starts_with("502 5.5.1 "));
    let mut session = session_with(auth_config(AuthAvailability::Always));
    let outcome = exchange(&mut session, b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert!(outcome.last().starts_with("503 5.5.1 "), "AUTH before EHLO");
}

#[test]
fn starttls_resets_the_session() {
    let mut session = greeted(auth_config(AuthAvailability::AfterTls));
    let outcome = exchange(
        &mut session,
        b"MAIL FROM:<a@b.example>\r\nSTARTTLS\r\nMAIL FROM:<injected@x.test>\r\n",
    );
    assert_eq!(outcome.replies[1], "220 2.0.0 Ready to start TLS\r\n");
    assert!(outcome.starttls);
    // Plain text pipelined behind STARTTLS is dropped, and nothing more happens until TLS.
    session.receive(b"NOOP\r\n");
    assert!(session.poll().is_none());
    session.tls_established();
    assert!(session.is_tls());
    assert_eq!(session.helo(), None);
    let outcome = exchange(&mut session, b"MAIL FROM:<a@b.example>\r\nEHLO c\r\n");
    assert_eq!(outcome.codes(), [503, 250]);
    assert_eq!(outcome.senders.len(), 0);
    assert!(!outcome.last().contains("STARTTLS"));
    assert!(outcome.last().contains("AUTH PLAIN LOGIN"));
    let outcome = exchange(&mut session, b"STARTTLS\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_eq!(outcome.codes(), [503, 235]);
}

#[test]
fn starttls_refused_without_tls() {
    let mut session = greeted(SessionConfig::default());
    let outcome = exchange(&mut session, b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(outcome.codes(), [502, 250]);
    assert!(!outcome.starttls);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Client input made of command fragments, line-ending debris and random bytes.
    fn client_input() -> impl Strategy<Value = Vec<u8>> {
        let fragment = prop_oneof![
            Just(
                b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<d@e.example>\r\nDATA\r\n".to_vec()
            ),
            Just(b"EHLO c\r\n".to_vec()),
            Just(b"HELO c\r\n".to_vec()),
            Just(b"MAIL FROM:<a@b.example>\r\n".to_vec()),
            Just(b"RCPT TO:<d@e.example>\r\n".to_vec()),
            Just(b"DATA\r\n".to_vec()),
            Just(b"BDAT 3\r\n".to_vec()),
            Just(b"BDAT 2 LAST\r\n".to_vec()),
            Just(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n".to_vec()),
            Just(b"AUTH LOGIN\r\n".to_vec()),
            Just(b"RSET\r\n".to_vec()),
            Just(b"NOOP\r\n".to_vec()),
            Just(b".\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b".".to_vec()),
            Just(b"text".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(fragment, 0..40).prop_map(|fragments| fragments.concat())
    }

    fn config() -> SessionConfig {
        SessionConfig {
            auth: AuthAvailability::Always,
            max_errors: 1000,
            ..SessionConfig::default()
        }
    }

    proptest! {
        /// Whatever a client sends, however TCP splits it: the same replies and messages, and
        /// every message has CRLF line endings only.
        #[test]
        fn segmentation_never_matters(
            input in client_input(),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let whole = exchange(&mut Session::new(config()), &input);

            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
            cuts.push(input.len());
            cuts.sort_unstable();
            let mut session = Session::new(config());
            let mut pieces = Outcome::default();
            let mut start = 0;
            for cut in cuts {
                let outcome = exchange(&mut session, &input[start..cut]);
                start = cut;
                pieces.replies.extend(outcome.replies);
                pieces.messages.extend(outcome.messages);
            }

            prop_assert_eq!(&pieces.replies, &whole.replies);
            prop_assert_eq!(&pieces.messages, &whole.messages);
            for message in &whole.messages {
                prop_assert!(check_text(&message.data).is_ok());
            }
        }
    }
}

/// Paths are read by `address`, not smtp-proto: quotes are kept (the local part is what was
/// quoted, the domain is what follows it), and the parameters after them are read as before.
#[test]
fn quoted_local_parts_keep_their_quotes() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"<"ceo@fabrikam.com> ENVID=x"@contoso.com>"#,
            "ceo@fabrikam.com> ENVID=x",
            r#""ceo@fabrikam.com> ENVID=x"@contoso.com"#,
        ),
        (
            r#"<"bob smith"@example.org>"#,
            "bob smith",
            r#""bob smith"@example.org"#,
        ),
        (r#"<"bob"@example.org>"#, "bob", "bob@example.org"),
        (r#"<"a\"b"@example.org>"#, r#"a"b"#, r#""a\"b"@example.org"#),
        ("<@relay.example:joe@example.org>", "joe", "joe@example.org"),
    ];
    for (path, local_part, written) in cases {
        let mut session = greeted(SessionConfig::default());
        let input = format!("MAIL FROM:{path} SIZE=10\r\nRCPT TO:{path}\r\n");
        let outcome = exchange(&mut session, input.as_bytes());
        assert_eq!(outcome.codes(), [250, 250], "{path}");
        let sender = outcome.senders[0].address.as_ref().unwrap();
        assert_eq!(sender.local_part(), *local_part);
        assert_eq!(sender.to_string(), *written);
        assert_eq!(outcome.senders[0].size, Some(10));
        assert_eq!(outcome.recipients, [*written]);
    }
}

#[test]
fn addresses_that_cannot_be_written_back_are_refused_with_a_reason() {
    let long = format!("<{}@example.org>", "a".repeat(65));
    let cases: &[(&str, &str)] = &[
        (
            "MAIL FROM:<a b@example.org>",
            "501 5.1.7 Bad sender address syntax: malformed local part",
        ),
        (
            "MAIL FROM:<\"a\x01b\"@example.org>",
            "501 5.1.7 Bad sender address syntax: control character in address",
        ),
        (
            "MAIL FROM:<postmaster>",
            "501 5.1.7 Bad sender address syntax: address has no domain",
        ),
        (
            "MAIL FROM:joe@example.org",
            "501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]",
        ),
        ("MAIL FROM:<ok@example.org>", "250 2.1.0 "),
        (
            "RCPT TO:<\"a\tb\"@example.org>",
            "501 5.1.3 Bad recipient address syntax: control character in address",
        ),
        (
            "RCPT TO:<>",
            "501 5.1.3 Bad recipient address syntax: address has no domain",
        ),
        (
            "RCPT TO:<joe@[192.0.2.300]>",
            "501 5.1.3 Bad recipient address syntax: malformed address literal",
        ),
        (
            &format!("RCPT TO:{long}"),
            "501 5.1.3 Bad recipient address syntax: local part longer than 64 octets",
        ),
        (
            "RCPT TO:<\"jöe\"@example.org>",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8",
        ),
        (
            "RCPT TO:<j\u{fffd}e@example.org>",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8",
        ),
    ];
    let mut session = greeted(SessionConfig {
        max_errors: 100,
        ..SessionConfig::default()
    });
    for (line, expected) in cases {
        let outcome = exchange(&mut session, format!("{line}\r\n").as_bytes());
        assert!(
            outcome.last().starts_with(expected),
            "{line:?} got {:?}",
            outcome.replies
        );
    }
    let outcome = exchange(&mut session, b"RCPT TO:<j\xf6e@example.org>\r\n");
    assert_eq!(
        outcome.replies,
        ["501 5.1.3 Bad recipient address syntax: not UTF-8\r\n"]
    );
}

/// RFC 5321 section 4.5.1: `<Postmaster>` is always a valid recipient; it is this server's
/// postmaster. An address literal is valid syntax: whether to relay to it is the policy's call.
#[test]
fn postmaster_and_address_literals_are_valid_recipients() {
    let mut session = Session::new(SessionConfig {
        hostname: "relay.example".into(),
        ..SessionConfig::default()
    });
    let outcome = exchange(
        &mut session,
        b"EHLO client.example\r\nMAIL FROM:<joe@example.com>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<bob@[192.0.2.1]>\r\n\
          RCPT TO:<ann@[IPv6:2001:db8::1]>\r\n",
    );
    assert_eq!(outcome.codes(), [220, 250, 250, 250, 250, 250]);
    assert_eq!(
        outcome.recipients,
        [
            "postmaster@relay.example",
            "bob@[192.0.2.1]",
            "ann@[IPv6:2001:db8::1]"
        ]
    );
}
