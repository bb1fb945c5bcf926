//! signet's SMTP edge: the protocol core, the DATA reader, the durable spool and a thin listener.
//!
//! The model follows quinn-proto and rustls: [`Session`] is a pure state machine that takes the
//! bytes a client sent and returns [`Event`]s — replies to write, and questions (this sender?
//! this recipient? these credentials? this message?) that the caller answers. [`listener`]
//! moves bytes between a socket and a session and asks a [`Policy`] and a [`Sink`] those
//! questions; [`Spool`] stores accepted messages durably before the `250` goes out. Envelope
//! addresses are [`Mailbox`] values from the session to the next hop ([`address`]): parsed once,
//! written back quoted exactly where RFC 5321 requires.
//!
//! ```
//! use signet_smtp::{Event, Session, SessionConfig};
//!
//! let mut session = Session::new(SessionConfig::default());
//! session.receive(b"EHLO client.example\r\nMAIL FROM:<joe@example.com>\r\n");
//! let mut replies = Vec::new();
//! while let Some(event) = session.poll() {
//!     match event {
//!         Event::Reply(reply) => replies.push(reply.code()),
//!         Event::Sender(sender) => {
//!             assert_eq!(sender.address.unwrap().to_string(), "joe@example.com");
//!             session.accept();
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert_eq!(replies, [220, 250, 250]);
//! ```

pub mod address;
pub mod client;
pub mod counters;
pub mod data;
pub mod delivery;
mod error;
pub mod limits;
pub mod listener;
mod reply;
mod session;
pub mod spool;
pub mod throttle;

pub use address::{AddressError, Domain, Mailbox};
pub use counters::{Counter, Counters};
pub use error::Error;
pub use limits::LogLimit;
pub use listener::{
    Admission, Client, Listener, ListenerConfig, Policy, Sink, SpoolSink, invalid_credentials,
};
pub use reply::Reply;
pub use session::{
    AuthAvailability, AuthMechanism, Body, Credentials, Event, MAX_AUTH_LINE, MAX_COMMAND_LINE,
    MailFrom, RcptTo, ReceivedMessage, Session, SessionConfig,
};
pub use spool::{Envelope, QueueId, Spool};
pub use throttle::{AuthThrottle, ThrottleConfig};
