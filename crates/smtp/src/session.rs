//! The SMTP server session as a pure state machine: bytes in, events out, no I/O.
//!
//! The caller feeds what it read with [`Session::receive`] and drains [`Session::poll`] until it
//! returns `None`. [`Event::Reply`] is written to the client; [`Event::Close`] ends the
//! connection; [`Event::StartTls`] asks for a TLS handshake on the same connection, after which
//! the caller calls [`Session::tls_established`]. The events [`Event::Sender`],
//! [`Event::Recipient`], [`Event::Authenticate`] and [`Event::Message`] are questions: the session
//! waits (`poll` returns `None`) until the caller answers with [`Session::accept`],
//! [`Session::accept_message`] or [`Session::reject`]. Commands a client pipelined are held until
//! then and answered in order (RFC 2920).
//!
//! Every reply carries an RFC 3463 enhanced status code except where RFC 2034 section 4 and
//! RFC 4954 leave it out: the greeting, the replies to HELO/EHLO, and the 3xx intermediate replies
//! (`354`, and `334` whose text is a base64 challenge).

use std::collections::VecDeque;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_proto::Request;
use zeroize::Zeroizing;

use crate::address::{AddressError, Domain, Mailbox, Path};
use crate::data::{DataProblem, DataReader, check_text};
use crate::reply::Reply;

/// Longest command line, in octets including CRLF (RFC 5321 section 4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest line of an AUTH exchange (RFC 4954 section 4).
pub const MAX_AUTH_LINE: usize = 12_288;

/// What one listener offers and allows; cheap to clone per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name the server gives in its greeting and EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in octets (advertised as `SIZE`).
    pub max_message_size: usize,
    /// Most recipients per message; further RCPTs get `452 4.5.3` (RFC 5321 section 4.5.3.1.8).
    pub max_recipients: usize,
    /// Protocol errors (unknown commands, bad syntax or sequence, failed AUTH) before the session
    /// is closed with `421 4.7.0`.
    pub max_errors: usize,
    /// Offer STARTTLS (the caller has a certificate).
    pub starttls: bool,
    /// When AUTH is offered.
    pub auth: AuthAvailability,
    /// Offer CHUNKING (BDAT, RFC 3030).
    pub chunking: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            starttls: false,
            auth: AuthAvailability::Disabled,
            chunking: true,
        }
    }
}

/// When a session offers SMTP AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAvailability {
    /// Never (a relay listener that admits clients by address).
    Disabled,
    /// Only once TLS is up; before it, AUTH gets `538 5.7.11`.
    AfterTls,
    /// Also over plain text (loopback, tests).
    Always,
}

/// A `MAIL FROM` the session parsed and checked for syntax and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path; `None` for the null sender `<>`.
    pub address: Option<Mailbox>,
    /// The client's `SIZE=` declaration.
    pub size: Option<usize>,
    /// The client's `BODY=` declaration.
    pub body: Body,
    /// `SMTPUTF8` was given (RFC 6531).
    pub smtputf8: bool,
}

/// The body type a client declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// No `BODY=` or `BODY=7BIT`.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
}

/// A `RCPT TO` the session parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    /// The forward path. `<Postmaster>` without a domain arrives as `postmaster@` the
    /// session's hostname (RFC 5321 section 4.5.1).
    pub address: Mailbox,
}

/// The SASL mechanisms the session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// RFC 4616.
    Plain,
    /// The de facto `LOGIN` mechanism.
    Login,
}

/// What a client presented in AUTH. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// How they were sent.
    pub mechanism: AuthMechanism,
    /// The PLAIN authorization identity, when the client gave one.
    pub authorization_id: Option<String>,
    /// The user name (authentication identity).
    pub username: String,
    /// The password, wiped from memory when dropped.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("authorization_id", &self.authorization_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A complete message: the envelope and the data, dot-unstuffed, CRLF line endings only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The name the client gave in HELO/EHLO.
    pub helo: String,
    /// The client said EHLO, not HELO (`with ESMTP` rather than `with SMTP` in `Received:`).
    pub extended: bool,
    /// The envelope sender.
    pub sender: MailFrom,
    /// The accepted recipients, in order.
    pub recipients: Vec<RcptTo>,
    /// The message as received.
    pub data: Vec<u8>,
}

/// What the session wants from its caller.
#[derive(Debug)]
pub enum Event {
    /// Write this reply to the client.
    Reply(Reply),
    /// Decide on this sender: [`Session::accept`] or [`Session::reject`].
    Sender(MailFrom),
    /// Decide on this recipient: [`Session::accept`] or [`Session::reject`].
    Recipient(RcptTo),
    /// Check these credentials: [`Session::accept`] or [`Session::reject`].
    Authenticate(Credentials),
    /// Take this message (spool it) and answer [`Session::accept_message`] or
    /// [`Session::reject`]; the answer ends the transaction either way.
    Message(ReceivedMessage),
    /// Flush the replies, run the TLS handshake on the connection, then call
    /// [`Session::tls_established`].
    StartTls,
    /// Flush the replies and close the connection.
    Close,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    input: Vec<u8>,
    events: VecDeque<Event>,
    phase: Phase,
    helo: Option<Helo>,
    tls: bool,
    authenticated: bool,
    transaction: Option<Transaction>,
    errors: usize,
    /// A line longer than the limit is being skipped up to its LF.
    skipping_long_line: bool,
}

#[derive(Debug, Clone)]
struct Helo {
    name: String,
    extended: bool,
}

#[derive(Debug)]
struct Transaction {
    sender: MailFrom,
    recipients: Vec<RcptTo>,
    /// The message so far, once BDAT has started.
    chunks: Option<Chunks>,
}

#[derive(Debug, Default)]
struct Chunks {
    data: Vec<u8>,
    too_large: bool,
}

/// What the session waits for, named as rustls names its states.
#[derive(Debug)]
enum Phase {
    ExpectCommand,
    ExpectData(DataReader),
    ExpectChunk {
        remaining: usize,
        last: bool,
        refusal: Option<Reply>,
    },
    ExpectPlainResponse,
    ExpectLoginUsername,
    ExpectLoginPassword {
        username: String,
    },
    AwaitingDecision(Pending),
    AwaitingTls,
    Closed,
}

#[derive(Debug)]
enum Pending {
    Sender(MailFrom),
    Recipient(RcptTo),
    Authentication,
    Message,
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
    BareLineEnding,
}

impl Session {
    /// A new session; its first event is the `220` greeting.
    pub fn new(config: SessionConfig) -> Self {
        let greeting =
            Reply::without_status(220, vec![format!("{} ESMTP signet", config.hostname)]);
        Self {
            config,
            input: Vec::new(),
            events: VecDeque::from([Event::Reply(greeting)]),
            phase: Phase::ExpectCommand,
            helo: None,
            tls: false,
            authenticated: false,
            transaction: None,
            errors: 0,
            skipping_long_line: false,
        }
    }

    /// Hands the session bytes read from the client.
    pub fn receive(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed | Phase::AwaitingTls) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next event, or `None` when the session needs more input or an answer.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if !self.advance() {
                return None;
            }
        }
    }

    /// Accepts the pending sender, recipient or credentials (or the message, without naming a
    /// queue id).
    pub fn accept(&mut self) {
        match self.take_pending() {
            Pending::Sender(sender) => {
                self.transaction = Some(Transaction {
                    sender,
                    recipients: Vec::new(),
                    chunks: None,
                });
                self.reply(Reply::new(250, [2, 1, 0], "Sender ok"));
            }
            Pending::Recipient(recipient) => {
                if let Some(transaction) = &mut self.transaction {
                    transaction.recipients.push(recipient);
                }
                self.reply(Reply::new(250, [2, 1, 5], "Recipient ok"));
            }
            Pending::Authentication => {
                self.authenticated = true;
                self.reply(Reply::new(235, [2, 7, 0], "Authentication successful"));
            }
            Pending::Message => self.reply(Reply::new(250, [2, 0, 0], "Ok: queued")),
        }
    }

    /// Accepts the pending message, which was stored as `queue_id`.
    pub fn accept_message(&mut self, queue_id: &str) {
        match self.take_pending() {
            Pending::Message => {
                self.reply(Reply::new(
                    250,
                    [2, 0, 0],
                    format!("Ok: queued as {queue_id}"),
                ));
            }
            other => panic!("accept_message while {other:?} is pending"),
        }
    }

    /// Refuses what is pending with `reply` (4xx or 5xx). A `421` closes the session.
    pub fn reject(&mut self, reply: Reply) {
        debug_assert!(!reply.is_positive(), "reject with a positive reply");
        match self.take_pending() {
            Pending::Authentication => self.error(reply),
            Pending::Sender(_) | Pending::Recipient(_) | Pending::Message => self.reply(reply),
        }
    }

    /// The TLS handshake that [`Event::StartTls`] asked for succeeded: the session starts over
    /// as RFC 3207 section 4.2 requires (the client must say EHLO again; any earlier AUTH or
    /// transaction is forgotten).
    pub fn tls_established(&mut self) {
        assert!(
            matches!(self.phase, Phase::AwaitingTls),
            "tls_established without a STARTTLS"
        );
        self.tls = true;
        self.helo = None;
        self.authenticated = false;
        self.transaction = None;
        self.input.clear();
        self.phase = Phase::ExpectCommand;
    }

    /// The session is reading message content (DATA or a BDAT chunk): the caller applies the
    /// data timeout instead of the command timeout.
    pub fn is_reading_data(&self) -> bool {
        matches!(self.phase, Phase::ExpectData(_) | Phase::ExpectChunk { .. })
    }

    /// The session has ended (QUIT, too many errors, a 421).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// AUTH succeeded on this session.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The name the client gave in HELO/EHLO.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_ref().map(|helo| helo.name.as_str())
    }

    /// The configuration this session runs with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Makes progress on buffered input; false when nothing more can be done now.
    fn advance(&mut self) -> bool {
        match &self.phase {
            Phase::Closed | Phase::AwaitingTls | Phase::AwaitingDecision(_) => false,
            Phase::ExpectData(_) => self.advance_data(),
            Phase::ExpectChunk { .. } => self.advance_chunk(),
            Phase::ExpectCommand => match self.take_line(MAX_COMMAND_LINE) {
                None => false,
                Some(Line::Complete(line)) => {
                    self.command(&line);
                    true
                }
                Some(Line::TooLong) => {
                    self.error(Reply::new(500, [5, 5, 2], "Line too long"));
                    true
                }
                Some(Line::BareLineEnding) => {
                    self.error(Reply::new(500, [5, 5, 2], "Bare CR or LF in command line"));
                    true
                }
            },
            Phase::ExpectPlainResponse
            | Phase::ExpectLoginUsername
            | Phase::ExpectLoginPassword { .. } => match self.take_line(MAX_AUTH_LINE) {
                None => false,
                Some(Line::Complete(line)) => {
                    self.auth_response(&line);
                    true
                }
                Some(Line::TooLong | Line::BareLineEnding) => {
                    self.phase = Phase::ExpectCommand;
                    self.error(Reply::new(
                        500,
                        [5, 5, 6],
                        "Authentication exchange line too long",
                    ));
                    true
                }
            },
        }
    }

    /// Takes one CRLF-terminated line (without its CRLF) of at most `limit` octets with CRLF.
    fn take_line(&mut self, limit: usize) -> Option<Line> {
        let newline = self.input.iter().position(|&byte| byte == b'\n');
        if self.skipping_long_line {
            let Some(position) = newline else {
                self.input.clear();
                return None;
            };
            self.input.drain(..=position);
            self.skipping_long_line = false;
            return Some(Line::TooLong);
        }
        match newline {
            Some(position) if position < limit => {
                let mut line: Vec<u8> = self.input.drain(..=position).collect();
                line.pop();
                if line.pop() != Some(b'\r') || line.contains(&b'\r') {
                    return Some(Line::BareLineEnding);
                }
                Some(Line::Complete(line))
            }
            Some(position) => {
                self.input.drain(..=position);
                Some(Line::TooLong)
            }
            None if self.input.len() >= limit => {
                self.input.clear();
                self.skipping_long_line = true;
                None
            }
            None => None,
        }
    }

    fn advance_data(&mut self) -> bool {
        let Phase::ExpectData(reader) = &mut self.phase else {
            unreachable!("advance_data outside DATA")
        };
        if self.input.is_empty() {
            return false;
        }
        let used = reader.feed(&self.input);
        self.input.drain(..used);
        if !reader.is_finished() {
            return true;
        }
        let Phase::ExpectData(reader) = std::mem::replace(&mut self.phase, Phase::ExpectCommand)
        else {
            unreachable!()
        };
        let transaction = self.transaction.take().expect("DATA without a transaction");
        match reader.finish() {
            Ok(data) => self.deliver(transaction, data),
            Err(problem) => self.reply(problem_reply(problem)),
        }
        true
    }

    fn advance_chunk(&mut self) -> bool {
        let Phase::ExpectChunk { remaining, .. } = &mut self.phase else {
            unreachable!("advance_chunk outside BDAT")
        };
        if *remaining > 0 {
            if self.input.is_empty() {
                return false;
            }
            let take = (*remaining).min(self.input.len());
            *remaining -= take;
            let max = self.config.max_message_size;
            if let Some(chunks) = self
                .transaction
                .as_mut()
                .and_then(|transaction| transaction.chunks.as_mut())
            {
                if chunks.too_large || chunks.data.len() + take > max {
                    chunks.too_large = true;
                    chunks.data = Vec::new();
                } else {
                    chunks.data.extend_from_slice(&self.input[..take]);
                }
            }
            self.input.drain(..take);
            if *remaining > 0 {
                return true;
            }
        }
        let Phase::ExpectChunk {
            last,
            refusal,
            remaining: _,
        } = std::mem::replace(&mut self.phase, Phase::ExpectCommand)
        else {
            unreachable!()
        };
        self.chunk_complete(last, refusal);
        true
    }

    fn chunk_complete(&mut self, last: bool, refusal: Option<Reply>) {
        if let Some(refusal) = refusal {
            self.transaction = None;
            self.error(refusal);
            return;
        }
        let chunks = self
            .transaction
            .as_ref()
            .and_then(|transaction| transaction.chunks.as_ref())
            .expect("BDAT chunk without a transaction");
        if chunks.too_large {
            self.transaction = None;
            self.reply(problem_reply(DataProblem::TooLarge));
        } else if !last {
            let size = chunks.data.len();
            self.reply(Reply::new(
                250,
                [2, 0, 0],
                format!("{size} octets received"),
            ));
        } else {
            let mut transaction = self.transaction.take().expect("checked above");
            let data = transaction.chunks.take().unwrap_or_default().data;
            match check_text(&data) {
                Ok(()) => self.deliver(transaction, data),
                Err(problem) => self.reply(problem_reply(problem)),
            }
        }
    }

    fn deliver(&mut self, transaction: Transaction, data: Vec<u8>) {
        let (helo, extended) = self
            .helo
            .as_ref()
            .map(|helo| (helo.name.clone(), helo.extended))
            .unwrap_or_default();
        self.phase = Phase::AwaitingDecision(Pending::Message);
        self.events.push_back(Event::Message(ReceivedMessage {
            helo,
            extended,
            sender: transaction.sender,
            recipients: transaction.recipients,
            data,
        }));
    }

    fn command(&mut self, line: &[u8]) {
        let (mut framed, path) = match split_path(line) {
            Ok(split) => split,
            Err(reply) => return self.error(reply),
        };
        framed.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut framed.iter()) {
            Ok(request) => request.into_owned(),
            Err(error) => {
                self.error(parse_error_reply(&error));
                return;
            }
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Mail { from } => self.mail(&from, path),
            Request::Rcpt { to } => self.rcpt(&to, path),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::StartTls => self.starttls(),
            Request::Rset => {
                self.transaction = None;
                self.reply(Reply::new(250, [2, 0, 0], "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, [2, 0, 0], "Ok")),
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                [2, 5, 0],
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                [2, 0, 0],
                "See RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)",
            )),
            Request::Quit => {
                self.reply(Reply::new(221, [2, 0, 0], "Bye"));
                self.close();
            }
            Request::Expn { .. }
            | Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.error(Reply::new(502, [5, 5, 1], "Command not implemented"));
            }
        }
    }

    fn hello(&mut self, host: String, extended: bool) {
        // EHLO/HELO end any transaction (RFC 5321 section 4.1.4).
        self.transaction = None;
        let reply = if extended {
            Reply::without_status(250, self.capabilities())
        } else {
            Reply::without_status(250, vec![self.config.hostname.clone()])
        };
        self.helo = Some(Helo {
            name: host,
            extended,
        });
        self.reply(reply);
    }

    fn capabilities(&self) -> Vec<String> {
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.config.chunking {
            lines.push("CHUNKING".into());
        }
        if self.config.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines
    }

    fn auth_offered(&self) -> bool {
        match self.config.auth {
            AuthAvailability::Disabled => false,
            AuthAvailability::AfterTls => self.tls,
            AuthAvailability::Always => true,
        }
    }

    fn mail(&mut self, from: &smtp_proto::MailFrom<String>, path: Option<Path>) {
        let address = match path {
            Some(Path::Null) => None,
            Some(Path::Mailbox(mailbox)) => Some(mailbox),
            Some(Path::Postmaster) => return self.error(bad_sender(&AddressError::NoDomain)),
            None => return self.error(bad_sender(&AddressError::Brackets)),
        };
        let extended = match &self.helo {
            None => return self.error(Reply::new(503, [5, 5, 1], "Send HELO/EHLO first")),
            Some(helo) => helo.extended,
        };
        if self.transaction.is_some() {
            return self.error(Reply::new(503, [5, 5, 1], "Nested MAIL command"));
        }
        let sender = match sender_from(from, address, extended) {
            Ok(sender) => sender,
            Err(reply) => return self.error(reply),
        };
        if sender
            .size
            .is_some_and(|size| size > self.config.max_message_size)
        {
            return self.reply(problem_reply(DataProblem::TooLarge));
        }
        if !sender.smtputf8 && !sender.address.as_ref().is_none_or(Mailbox::is_ascii) {
            return self.reply(Reply::new(
                553,
                [5, 6, 7],
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        self.ask(Pending::Sender(sender.clone()), Event::Sender(sender));
    }

    fn rcpt(&mut self, to: &smtp_proto::RcptTo<String>, path: Option<Path>) {
        let Some(transaction) = &self.transaction else {
            return self.error(Reply::new(503, [5, 5, 1], "Need MAIL command first"));
        };
        if transaction.chunks.is_some() {
            return self.error(Reply::new(503, [5, 5, 1], "RCPT not allowed after BDAT"));
        }
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            return self.error(Reply::new(555, [5, 5, 4], "Unsupported RCPT parameter"));
        }
        let address = match path {
            Some(Path::Mailbox(mailbox)) => mailbox,
            Some(Path::Postmaster) => {
                match Mailbox::new("postmaster", Domain::Name(self.config.hostname.clone())) {
                    Ok(postmaster) => postmaster,
                    Err(_) => {
                        return self.reply(Reply::new(
                            550,
                            [5, 1, 1],
                            "No postmaster here: the server's hostname is not a domain",
                        ));
                    }
                }
            }
            Some(Path::Null) => return self.error(bad_recipient(&AddressError::NoDomain)),
            None => return self.error(bad_recipient(&AddressError::Brackets)),
        };
        if transaction.recipients.len() >= self.config.max_recipients {
            return self.reply(Reply::new(452, [4, 5, 3], "Too many recipients"));
        }
        if !transaction.sender.smtputf8 && !address.is_ascii() {
            return self.reply(Reply::new(
                553,
                [5, 6, 7],
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        let recipient = RcptTo { address };
        self.ask(
            Pending::Recipient(recipient.clone()),
            Event::Recipient(recipient),
        );
    }

    fn data(&mut self) {
        let Some(transaction) = &self.transaction else {
            return self.error(Reply::new(503, [5, 5, 1], "Need MAIL command first"));
        };
        if transaction.chunks.is_some() {
            return self.error(Reply::new(503, [5, 5, 1], "DATA not allowed after BDAT"));
        }
        if transaction.recipients.is_empty() {
            return self.error(Reply::new(554, [5, 5, 1], "No valid recipients"));
        }
        self.phase = Phase::ExpectData(DataReader::new(self.config.max_message_size));
        self.reply(Reply::without_status(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".into()],
        ));
    }

    fn bdat(&mut self, size: usize, last: bool) {
        // The chunk follows the command whatever the answer, so it is always read (RFC 3030).
        let refusal = match &mut self.transaction {
            _ if !self.config.chunking => Some(Reply::new(502, [5, 5, 1], "CHUNKING not offered")),
            None => Some(Reply::new(503, [5, 5, 1], "Need MAIL command first")),
            Some(transaction) if transaction.recipients.is_empty() => {
                Some(Reply::new(554, [5, 5, 1], "No valid recipients"))
            }
            Some(transaction) => {
                transaction.chunks.get_or_insert_with(Chunks::default);
                None
            }
        };
        self.phase = Phase::ExpectChunk {
            remaining: size,
            last,
            refusal,
        };
    }

    fn auth(&mut self, mechanism: u64, initial_response: &str) {
        if self.config.auth == AuthAvailability::Disabled {
            return self.error(Reply::new(502, [5, 5, 1], "AUTH not available"));
        }
        if !self.auth_offered() {
            return self.error(Reply::new(
                538,
                [5, 7, 11],
                "Encryption required for requested authentication mechanism",
            ));
        }
        if !self.helo.as_ref().is_some_and(|helo| helo.extended) {
            return self.error(Reply::new(503, [5, 5, 1], "Send EHLO first"));
        }
        if self.authenticated {
            return self.error(Reply::new(503, [5, 5, 1], "Already authenticated"));
        }
        if self.transaction.is_some() {
            return self.error(Reply::new(
                503,
                [5, 5, 1],
                "AUTH not allowed during a mail transaction",
            ));
        }
        match (mechanism, initial_response) {
            (smtp_proto::AUTH_PLAIN, "") => {
                self.phase = Phase::ExpectPlainResponse;
                self.challenge("");
            }
            (smtp_proto::AUTH_PLAIN, response) => self.plain(response.as_bytes()),
            (smtp_proto::AUTH_LOGIN, "") => {
                self.phase = Phase::ExpectLoginUsername;
                self.challenge("VXNlcm5hbWU6"); // "Username:"
            }
            (smtp_proto::AUTH_LOGIN, response) => self.login_username(response.as_bytes()),
            _ => self.error(Reply::new(
                504,
                [5, 5, 4],
                "Unrecognized authentication type",
            )),
        }
    }

    fn auth_response(&mut self, line: &[u8]) {
        let phase = std::mem::replace(&mut self.phase, Phase::ExpectCommand);
        if line == b"*" {
            return self.error(Reply::new(501, [5, 0, 0], "Authentication cancelled"));
        }
        match phase {
            Phase::ExpectPlainResponse => self.plain(line),
            Phase::ExpectLoginUsername => self.login_username(line),
            Phase::ExpectLoginPassword { username } => {
                let Some(password) = decode_base64(line) else {
                    return self.error(malformed_auth());
                };
                let Ok(password) = String::from_utf8(password.to_vec()) else {
                    return self.error(malformed_auth());
                };
                self.authenticate(Credentials {
                    mechanism: AuthMechanism::Login,
                    authorization_id: None,
                    username,
                    password: Zeroizing::new(password),
                });
            }
            _ => unreachable!("auth_response outside an AUTH exchange"),
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64; `=` stands for an empty response.
    fn plain(&mut self, response: &[u8]) {
        let Some(decoded) = decode_base64(response) else {
            return self.error(malformed_auth());
        };
        let mut parts = decoded.split(|&byte| byte == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.error(malformed_auth());
        };
        let (Ok(authzid), Ok(username), Ok(password)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(password),
        ) else {
            return self.error(malformed_auth());
        };
        if username.is_empty() {
            return self.error(malformed_auth());
        }
        self.authenticate(Credentials {
            mechanism: AuthMechanism::Plain,
            authorization_id: (!authzid.is_empty()).then(|| authzid.to_owned()),
            username: username.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        });
    }

    fn login_username(&mut self, response: &[u8]) {
        let Some(username) = decode_base64(response)
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .filter(|username| !username.is_empty())
        else {
            return self.error(malformed_auth());
        };
        self.phase = Phase::ExpectLoginPassword { username };
        self.challenge("UGFzc3dvcmQ6"); // "Password:"
    }

    fn authenticate(&mut self, credentials: Credentials) {
        self.ask(Pending::Authentication, Event::Authenticate(credentials));
    }

    fn challenge(&mut self, text: &str) {
        self.reply(Reply::without_status(334, vec![text.into()]));
    }

    fn starttls(&mut self) {
        if !self.config.starttls {
            return self.error(Reply::new(502, [5, 5, 1], "STARTTLS not available"));
        }
        if self.tls {
            return self.error(Reply::new(503, [5, 5, 1], "TLS already active"));
        }
        self.reply(Reply::new(220, [2, 0, 0], "Ready to start TLS"));
        // Anything pipelined after STARTTLS was sent in clear text and must not be read as if
        // it came over TLS (the STARTTLS command injection flaw, CVE-2011-0411).
        self.input.clear();
        self.phase = Phase::AwaitingTls;
        self.events.push_back(Event::StartTls);
    }

    fn ask(&mut self, pending: Pending, event: Event) {
        self.phase = Phase::AwaitingDecision(pending);
        self.events.push_back(event);
    }

    fn take_pending(&mut self) -> Pending {
        match std::mem::replace(&mut self.phase, Phase::ExpectCommand) {
            Phase::AwaitingDecision(pending) => pending,
            other => panic!("no decision is pending (session is in {other:?})"),
        }
    }

    fn reply(&mut self, reply: Reply) {
        let closing = reply.code() == 421;
        self.events.push_back(Event::Reply(reply));
        if closing {
            self.close();
        }
    }

    /// A reply to a protocol error; too many of them end the session.
    fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.config.max_errors && !self.is_closed() {
            self.reply(Reply::new(
                421,
                [4, 7, 0],
                "Too many errors, closing connection",
            ));
        }
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.input.clear();
        self.events.push_back(Event::Close);
    }
}

fn sender_from(
    from: &smtp_proto::MailFrom<String>,
    address: Option<Mailbox>,
    extended: bool,
) -> Result<MailFrom, Reply> {
    const SUPPORTED: u64 =
        smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
    let unsupported = from.flags & !SUPPORTED != 0
        || from.trans_id.is_some()
        || from.by != 0
        || from.env_id.is_some()
        || from.solicit.is_some()
        || from.mtrk.is_some()
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mt_priority != 0;
    // AUTH= (RFC 4954 section 5) is accepted and ignored: the session knows who authenticated.
    let any_parameter = from.flags != 0 || from.size != 0 || from.auth.is_some();
    if unsupported || (!extended && any_parameter) {
        return Err(Reply::new(555, [5, 5, 4], "Unsupported MAIL parameter"));
    }
    let body = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
        Body::EightBitMime
    } else {
        Body::SevenBit
    };
    Ok(MailFrom {
        address,
        size: (from.size != 0).then_some(from.size),
        body,
        smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
    })
}

/// Reads the path of a `MAIL FROM:` or `RCPT TO:` line with [`Path::parse`] and puts `<>` in its
/// place: smtp-proto then reads the command and its parameters, but never the path (its reader
/// drops quotes, so `"a>b"@x` would come out as `a>b@x`, and refuses `<Postmaster>` and address
/// literals). Other lines pass through as they are.
fn split_path(line: &[u8]) -> Result<(Vec<u8>, Option<Path>), Reply> {
    let Some((start, sender)) = path_start(line) else {
        return Ok((line.to_vec(), None));
    };
    let refuse = |error: &dyn fmt::Display| {
        if sender {
            bad_sender(error)
        } else {
            bad_recipient(error)
        }
    };
    let text = std::str::from_utf8(&line[start..]).map_err(|_| refuse(&"not UTF-8"))?;
    let (path, rest) = Path::parse(text).map_err(|e| refuse(&e))?;
    let mut framed = Vec::with_capacity(start + 2 + rest.len());
    framed.extend_from_slice(&line[..start]);
    framed.extend_from_slice(b"<>");
    framed.extend_from_slice(rest.as_bytes());
    Ok((framed, Some(path)))
}

/// Where the `<` of a `MAIL FROM:` (true) or `RCPT TO:` (false) line is, spelled as leniently
/// as smtp-proto reads it (any case, spaces around `:`).
fn path_start(line: &[u8]) -> Option<(usize, bool)> {
    let (verb, keyword, sender) = match line.get(..4)? {
        verb if verb.eq_ignore_ascii_case(b"MAIL") => (4, &b"FROM"[..], true),
        verb if verb.eq_ignore_ascii_case(b"RCPT") => (4, &b"TO"[..], false),
        _ => return None,
    };
    let skip_spaces = |at: usize| at + line[at..].iter().take_while(|&&b| b == b' ').count();
    let at = skip_spaces(verb);
    if at == verb {
        return None;
    }
    let word = line.get(at..at + keyword.len())?;
    if !word.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let at = skip_spaces(at + keyword.len());
    if line.get(at) != Some(&b':') {
        return None;
    }
    let at = skip_spaces(at + 1);
    (line.get(at) == Some(&b'<')).then_some((at, sender))
}

fn bad_sender(error: &dyn fmt::Display) -> Reply {
    Reply::new(
        501,
        [5, 1, 7],
        format!("Bad sender address syntax: {error}"),
    )
}

fn bad_recipient(error: &dyn fmt::Display) -> Reply {
    Reply::new(
        501,
        [5, 1, 3],
        format!("Bad recipient address syntax: {error}"),
    )
}

fn parse_error_reply(error: &smtp_proto::Error) -> Reply {
    match error {
        smtp_proto::Error::UnknownCommand => {
            Reply::new(500, [5, 5, 2], "Syntax error, command unrecognized")
        }
        smtp_proto::Error::InvalidSenderAddress => {
            Reply::new(501, [5, 1, 7], "Bad sender address syntax")
        }
        smtp_proto::Error::InvalidRecipientAddress => {
            Reply::new(501, [5, 1, 3], "Bad recipient address syntax")
        }
        smtp_proto::Error::SyntaxError { syntax } => {
            Reply::new(501, [5, 5, 4], format!("Syntax: {syntax}"))
        }
        smtp_proto::Error::InvalidParameter { param } => {
            Reply::new(501, [5, 5, 4], format!("Invalid {param} parameter"))
        }
        smtp_proto::Error::UnsupportedParameter { .. } => {
            Reply::new(555, [5, 5, 4], "Unsupported parameter")
        }
        _ => Reply::new(501, [5, 5, 2], "Syntax error"),
    }
}

/// The replies for refused message data; see the [`crate::data`] module for the reasons.
fn problem_reply(problem: DataProblem) -> Reply {
    match problem {
        DataProblem::BareLineEnding => Reply::new(
            554,
            [5, 6, 0],
            "Bare CR or LF in message data not allowed, use CRLF line endings",
        ),
        DataProblem::LineTooLong => {
            Reply::new(554, [5, 6, 0], "Message has a line longer than 1000 octets")
        }
        DataProblem::TooLarge => Reply::new(
            552,
            [5, 3, 4],
            "Message size exceeds fixed maximum message size",
        ),
    }
}

fn malformed_auth() -> Reply {
    Reply::new(501, [5, 5, 2], "Malformed authentication response")
}

fn decode_base64(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if text == b"=" {
        return Some(Zeroizing::new(Vec::new()));
    }
    BASE64.decode(text).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests;
