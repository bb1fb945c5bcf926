//! A load generator for SMTP servers that measures what smtp-source does not: the time from the
//! end of a message's data (the final dot) to the server's `250`, per message.
//!
//! ```text
//! cargo run --release --example smtp_load -- 127.0.0.1:2525 --sessions 20 --messages 2000 --size 2048
//! ```
//!
//! Each session opens a connection per message (as smtp-source does by default), says EHLO,
//! MAIL, RCPT, DATA, sends a message of about `--size` bytes with a unique `Message-ID`, and
//! QUIT. It prints one line: messages sent, failures, seconds, messages per second, and the
//! p50/p99/max of end-of-data to `250` in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Options {
    server: String,
    sessions: usize,
    messages: usize,
    size: usize,
    from: String,
    to: String,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        server: args.next().ok_or("usage: smtp_load HOST:PORT [--sessions N] [--messages N] [--size BYTES] [--from A] [--to A]")?,
        sessions: 20,
        messages: 1000,
        size: 2048,
        from: "joe@contoso.com".into(),
        to: "ann@example.org".into(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sessions" => options.sessions = number()?,
            "--messages" => options.messages = number()?,
            "--size" => options.size = number()?,
            "--from" => options.from = value,
            "--to" => options.to = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // statistics
async fn main() {
    let options = match options() {
        Ok(options) => Arc::new(options),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let sessions: Vec<_> = (0..options.sessions)
        .map(|_| {
            let (options, next) = (Arc::clone(&options), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= options.messages {
                        return (latencies, failures);
                    }
                    match send(&options, n).await {
                        Ok(latency) => latencies.push(latency),
                        Err(e) => {
                            failures += 1;
                            if failures <= 3 {
                                eprintln!("message {n}: {e}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for session in sessions {
        let (mut l, f) = session.await.expect("a session task");
        latencies.append(&mut l);
        failures += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "sent={} failed={failures} seconds={seconds:.2} rate={:.0}/s eod_to_250_ms p50={:.2} p99={:.2} max={:.2}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

/// One message over one connection; the time from the final dot to the `250`.
async fn send(options: &Options, n: usize) -> Result<Duration, String> {
    let stream = TcpStream::connect(&options.server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "220").await?;
    for (command, code) in [
        ("EHLO load.example\r\n".to_string(), "250"),
        (format!("MAIL FROM:<{}>\r\n", options.from), "250"),
        (format!("RCPT TO:<{}>\r\n", options.to), "250"),
        ("DATA\r\n".to_string(), "354"),
    ] {
        write
            .write_all(command.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut read, code).await?;
    }
    write
        .write_all(&message(options, n))
        .await
        .map_err(|e| e.to_string())?;
    write.write_all(b".\r\n").await.map_err(|e| e.to_string())?;
    let end_of_data = Instant::now();
    expect(&mut read, "250").await?;
    let latency = end_of_data.elapsed();
    let _ = write.write_all(b"QUIT\r\n").await;
    let _ = expect(&mut read, "221").await;
    Ok(latency)
}

fn message(options: &Options, n: usize) -> Vec<u8> {
    let mut text = format!(
        "From: Joe <{}>\r\nTo: <{}>\r\nSubject: load test {n}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <load-{n}-{}@load.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        options.from,
        options.to,
        std::process::id()
    );
    let line = "The quarterly figures are attached below; please read them before the meeting.\r\n";
    while text.len() < options.size {
        text.push_str(line);
    }
    text.into_bytes()
}

/// Reads a whole reply and checks its code.
async fn expect(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    code: &str,
) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_mins(1), read.read_line(&mut line))
            .await
            .map_err(|_| "timed out waiting for a reply".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return if line.starts_with(code) {
                Ok(())
            } else {
                Err(format!("expected {code}, got {}", line.trim_end()))
            };
        }
    }
}
