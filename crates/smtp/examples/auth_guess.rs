//! Measures how fast a password can be guessed over AUTH PLAIN (issue 14): `--sessions`
//! concurrent sessions send wrong passwords for `--user` for `--seconds`, reconnecting when the
//! server closes a session, and count the answers. With `--then` it finally tries that
//! password (the right one) and prints the answer: a locked login refuses it too.
//!
//! ```text
//! cargo run --release --example auth_guess -- 127.0.0.1:2587 --user app@contoso.com \
//!     --sessions 16 --seconds 60 --then 'the right password'
//! ```
//!
//! The server must offer AUTH without TLS to this client (signet: `[smtp]
//! plaintext_auth_on_loopback = true`, from loopback). Prints one line: the counts of `535`
//! (refused guesses), `454` (throttled: try later), other replies, and guesses per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Options {
    server: String,
    user: String,
    sessions: usize,
    seconds: u64,
    then: Option<String>,
}

#[derive(Default)]
struct Tally {
    refused: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        server: args.next().ok_or(
            "usage: auth_guess HOST:PORT [--user U] [--sessions N] [--seconds S] [--then PASSWORD]",
        )?,
        user: "app@contoso.com".into(),
        sessions: 16,
        seconds: 60,
        then: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--user" => options.user = value,
            "--sessions" => options.sessions = usize::try_from(number()?).unwrap_or(1),
            "--seconds" => options.seconds = number()?,
            "--then" => options.then = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// A session that said EHLO, ready for AUTH.
struct Session {
    stream: BufReader<TcpStream>,
}

impl Session {
    async fn open(server: &str) -> std::io::Result<Session> {
        let mut session = Session {
            stream: BufReader::new(TcpStream::connect(server).await?),
        };
        session.reply().await?;
        session.command("EHLO guesser.example").await?;
        Ok(session)
    }

    async fn command(&mut self, line: &str) -> std::io::Result<u16> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.reply().await
    }

    /// The code of the next reply; an error at end of stream.
    async fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line
                    .get(..3)
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| std::io::Error::other(format!("not a reply: {line:?}")));
            }
        }
    }
}

fn plain(user: &str, password: &str) -> String {
    let token = format!("\0{user}\0{password}");
    format!(
        "AUTH PLAIN {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

async fn guess(options: Arc<Options>, tally: Arc<Tally>, worker: usize, until: Instant) {
    let mut attempt = 0u64;
    while Instant::now() < until {
        let Ok(mut session) = Session::open(&options.server).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while Instant::now() < until {
            attempt += 1;
            let line = plain(&options.user, &format!("guess-{worker}-{attempt}"));
            let remaining = until.saturating_duration_since(Instant::now());
            let Ok(Ok(code)) = tokio::time::timeout(remaining, session.command(&line)).await else {
                break; // closed (too many errors), or the time is up
            };
            let counter = match code {
                535 => &tally.refused,
                454 => &tally.throttled,
                _ => &tally.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() {
    let options = match options() {
        Ok(options) => Arc::new(options),
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let workers: Vec<_> = (0..options.sessions)
        .map(|worker| tokio::spawn(guess(options.clone(), tally.clone(), worker, until)))
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let refused = tally.refused.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let rate = refused as f64 / seconds;
    println!(
        "sessions={} seconds={seconds:.1} refused_535={refused} throttled_454={} other={} wrong_guesses_per_second={rate:.2}",
        options.sessions,
        tally.throttled.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    if let Some(password) = &options.then {
        let code = match Session::open(&options.server).await {
            Ok(mut session) => session.command(&plain(&options.user, password)).await.ok(),
            Err(_) => None,
        };
        println!("then the right password: {code:?}");
    }
}
