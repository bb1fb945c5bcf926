//! The sending side: one SMTP transaction to a next hop (a smart host), reporting what happened
//! to each recipient. Plain TCP; STARTTLS and AUTH towards the smart host come later.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What a delivery attempt did for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered,
    /// A 4xx or a connection problem: try again later.
    Deferred(String),
    /// A 5xx: give up on this recipient and tell the sender.
    Failed(String),
}

/// Sends `message` from `sender` to `recipients` through `next_hop` (`host:port`).
/// Every recipient gets an outcome; a connection-level problem defers them all.
pub async fn send(
    next_hop: &str,
    helo: &str,
    sender: &str,
    recipients: &[String],
    message: &[u8],
    eight_bit: bool,
    timeout: Duration,
) -> Vec<(String, RecipientOutcome)> {
    match tokio::time::timeout(
        timeout * 4,
        transaction(
            next_hop, helo, sender, recipients, message, eight_bit, timeout,
        ),
    )
    .await
    {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err(why)) => all(recipients, &why),
        Err(_) => all(
            recipients,
            &Failure::Temporary(format!("{next_hop}: transaction timed out")),
        ),
    }
}

/// A failure of the whole transaction.
enum Failure {
    Temporary(String),
    Permanent(String),
}

fn all(recipients: &[String], why: &Failure) -> Vec<(String, RecipientOutcome)> {
    recipients
        .iter()
        .map(|r| {
            let outcome = match why {
                Failure::Temporary(text) => RecipientOutcome::Deferred(text.clone()),
                Failure::Permanent(text) => RecipientOutcome::Failed(text.clone()),
            };
            (r.clone(), outcome)
        })
        .collect()
}

struct Connection {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    timeout: Duration,
    peer: String,
}

/// A reply: its code and its text (lines joined).
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn failure(&self, peer: &str, during: &str) -> Failure {
        let text = format!("{peer} answered {during} with {} {}", self.code, self.text);
        if self.code >= 500 {
            Failure::Permanent(text)
        } else {
            Failure::Temporary(text)
        }
    }
}

async fn transaction(
    next_hop: &str,
    helo: &str,
    sender: &str,
    recipients: &[String],
    message: &[u8],
    eight_bit: bool,
    timeout: Duration,
) -> Result<Vec<(String, RecipientOutcome)>, Failure> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(next_hop))
        .await
        .map_err(|_| Failure::Temporary(format!("{next_hop}: connection timed out")))?
        .map_err(|e| Failure::Temporary(format!("{next_hop}: {e}")))?;
    let (read, writer) = stream.into_split();
    let mut c = Connection {
        reader: BufReader::new(read),
        writer,
        timeout,
        peer: next_hop.to_string(),
    };
    let greeting = c.reply().await?;
    if greeting.code != 220 {
        return Err(greeting.failure(next_hop, "the connection"));
    }
    let ehlo = c.command(&format!("EHLO {helo}")).await?;
    let extensions = if ehlo.code == 250 {
        ehlo.text.to_ascii_uppercase()
    } else {
        let reply = c.command(&format!("HELO {helo}")).await?;
        if reply.code != 250 {
            return Err(reply.failure(next_hop, "HELO"));
        }
        String::new()
    };
    let body = if eight_bit && extensions.contains("8BITMIME") {
        " BODY=8BITMIME"
    } else {
        ""
    };
    let mail = c.command(&format!("MAIL FROM:<{sender}>{body}")).await?;
    if mail.code != 250 {
        return Err(mail.failure(next_hop, "MAIL FROM"));
    }
    let mut outcomes = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let reply = c.command(&format!("RCPT TO:<{recipient}>")).await?;
        let outcome = match reply.code {
            250 | 251 => RecipientOutcome::Delivered,
            _ => match reply.failure(next_hop, &format!("RCPT TO:<{recipient}>")) {
                Failure::Permanent(text) => RecipientOutcome::Failed(text),
                Failure::Temporary(text) => RecipientOutcome::Deferred(text),
            },
        };
        outcomes.push((recipient.clone(), outcome));
    }
    if !outcomes
        .iter()
        .any(|(_, o)| *o == RecipientOutcome::Delivered)
    {
        let _ = c.command("QUIT").await;
        return Ok(outcomes);
    }
    let data = c.command("DATA").await?;
    if data.code != 354 {
        return Err(data.failure(next_hop, "DATA"));
    }
    c.send_data(message).await?;
    let done = c.reply().await?;
    if done.code != 250 {
        // The message as a whole was refused: no accepted recipient got it.
        let failure = done.failure(next_hop, "the end of data");
        for (_, outcome) in &mut outcomes {
            if *outcome == RecipientOutcome::Delivered {
                *outcome = match &failure {
                    Failure::Permanent(text) => RecipientOutcome::Failed(text.clone()),
                    Failure::Temporary(text) => RecipientOutcome::Deferred(text.clone()),
                };
            }
        }
    }
    let _ = c.command("QUIT").await;
    Ok(outcomes)
}

impl Connection {
    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let peer = &self.peer;
        tokio::time::timeout(self.timeout, self.writer.write_all(bytes))
            .await
            .map_err(|_| Failure::Temporary(format!("{peer}: write timed out")))?
            .map_err(|e| Failure::Temporary(format!("{peer}: {e}")))
    }

    /// Dot-stuffed message, CRLF line ends enforced, then `.`.
    async fn send_data(&mut self, message: &[u8]) -> Result<(), Failure> {
        let mut out = Vec::with_capacity(message.len() + 64);
        for line in message.split_inclusive(|b| *b == b'\n') {
            let line = line
                .strip_suffix(b"\n")
                .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.write(&out).await
    }

    async fn reply(&mut self) -> Result<Reply, Failure> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
                .await
                .map_err(|_| Failure::Temporary(format!("{}: no reply in time", self.peer)))?
                .map_err(|e| Failure::Temporary(format!("{}: {e}", self.peer)))?;
            if read == 0 || line.len() < 4 {
                return Err(Failure::Temporary(format!(
                    "{}: connection closed",
                    self.peer
                )));
            }
            let code: u16 = line[..3]
                .parse()
                .map_err(|_| Failure::Temporary(format!("{}: not an SMTP reply", self.peer)))?;
            text.push(line[4..].trim_end().to_string());
            if line.as_bytes()[3] != b'-' {
                return Ok(Reply {
                    code,
                    text: text.join(" "),
                });
            }
        }
    }
}
