//! The signing gateway: connectors decide who may relay (by client network, on the relay
//! listener) or submit (by login, on the submission listener) for which tenant; accepted mail
//! is signed (`docs/reference.md`, "Which mail is signed") and spooled before `250`, and a
//! worker delivers it to the smart host, or without one to the recipients' MX hosts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use signet_app::{AppError, SignOutcome, SigningPolicy};
use signet_keys::{DomainName, TenantName};
use signet_smtp::client::NextHopTls;
use signet_smtp::delivery::{Fresh, Route};
use signet_smtp::spool::{Envelope, QueueId, Spool};
use signet_smtp::{
    Admission, AuthAvailability, Client, Counter, Counters, Credentials, Listener, ListenerConfig,
    LogLimit, MailFrom, Mailbox, Policy, RcptTo, ReceivedMessage, Reply, SessionConfig, Sink,
    invalid_credentials,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::Signet;
use crate::config::Config;

/// Deliveries under way at once (to the smart host, or to MX hosts).
const DELIVERY_PARALLEL: usize = 16;

/// Starts the relay and submission listeners and the delivery worker, counting into
/// `counters` (which `/metrics` reads); returns their tasks.
pub async fn spawn(
    config: &Config,
    service: Arc<Signet>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let spool =
        Arc::new(Spool::open(config.data_dir.join("spool")).context("cannot open the spool")?);
    let (fresh, fresh_ids) = mpsc::unbounded_channel();
    let hostname = config.smtp.hostname.clone();
    let sink = Arc::new(SigningSink {
        service: Arc::clone(&service),
        spool: Arc::clone(&spool),
        fresh,
        hostname: hostname.clone(),
        counters: Arc::clone(&counters),
        error_log: std::sync::Mutex::new(LogLimit::new(10, Duration::from_mins(1))),
    });
    let session = SessionConfig {
        hostname: hostname.clone(),
        ..SessionConfig::default()
    };
    let limits = ListenerConfig {
        session,
        counters: Arc::clone(&counters),
        command_timeout: config.smtp.timeout,
        data_timeout: config.smtp.data_timeout,
        max_connections: config.smtp.max_connections,
        auth_throttle: config.smtp.auth_throttle,
        ..ListenerConfig::default()
    };
    let relay = Listener::new(
        limits.clone(),
        Arc::new(ConnectorPolicy {
            service: Arc::clone(&service),
        }),
        Arc::clone(&sink),
    );
    let tls = crate::tls::server_config(&config.smtp.tls, &hostname)?;
    let submission = Listener::new(
        ListenerConfig {
            tls: Some(tls),
            ..limits
        },
        Arc::new(SubmissionPolicy {
            service,
            plaintext_on_loopback: config.smtp.plaintext_auth_on_loopback,
        }),
        sink,
    );
    let relay_listen = config.smtp.relay_listen;
    let submission_listen = config.smtp.submission_listen;
    let tasks = vec![
        run_listener("relay listener", relay, relay_listen, stop.clone()).await?,
        run_listener(
            "submission listener",
            submission,
            submission_listen,
            stop.clone(),
        )
        .await?,
    ];
    let (route, towards) = match &config.smtp.smart_host {
        Some(smart_host) => (
            Route::SmartHost(crate::tls::next_hop(&config.smtp, smart_host)?),
            format!("the smart host {smart_host}"),
        ),
        None => (
            Route::Mx {
                lookup: Arc::new(crate::resolver::HickoryDns::new(&config.resolver)?),
                port: config.smtp.mx_port,
                tls: NextHopTls::Opportunistic(
                    signet_smtp::client::opportunistic_tls().context("TLS towards MX hosts")?,
                ),
            },
            format!("the recipients' MX hosts (port {})", config.smtp.mx_port),
        ),
    };
    let delivery = signet_smtp::delivery::DeliveryConfig {
        route,
        hostname,
        queue_lifetime: Duration::from_secs(
            u64::try_from(config.smtp.queue_lifetime.seconds()).unwrap_or(0),
        ),
        timeout: Duration::from_mins(1),
        parallel: DELIVERY_PARALLEL,
        counters: Arc::clone(&counters),
        connections: Arc::default(),
    };
    let worker = tokio::spawn(signet_smtp::delivery::run(
        spool,
        delivery,
        fresh_ids,
        stop.clone(),
    ));
    let reporter = tokio::spawn(report_counters(counters, stop));
    info!(%relay_listen, "relay: accepting from connector networks");
    info!(%submission_listen, "submission: STARTTLS, then AUTH with a connector login");
    info!("delivery: to {towards}");
    Ok(tasks.into_iter().chain([worker, reporter]).collect())
}

/// How often the counters are logged (when they moved).
const COUNTERS_EVERY: Duration = Duration::from_mins(1);

/// Logs the counters once a minute when they changed, and once more when stopping.
async fn report_counters(counters: Arc<Counters>, mut stop: watch::Receiver<bool>) {
    let mut last = counters.snapshot();
    loop {
        let stopping = tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            () = tokio::time::sleep(COUNTERS_EVERY) => false,
        };
        let now = counters.snapshot();
        if now != last || stopping {
            info!("counters: {now}");
            last = now;
        }
        if stopping {
            return;
        }
    }
}

async fn run_listener<P: Policy, S: Sink>(
    what: &str,
    listener: Listener<P, S>,
    listen: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| crate::serve::cannot_listen(what, listen, &e.into()))?;
    Ok(tokio::spawn(async move {
        listener
            .serve_until(socket, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }))
}

/// Who may relay: a client whose address a tenant's connector covers. Everyone else is refused
/// at RCPT (never an open relay), and so is a sender domain the tenant has not accepted.
struct ConnectorPolicy {
    service: Arc<Signet>,
}

impl Policy for ConnectorPolicy {
    async fn connect(&self, client: &Client) -> Result<Admission, Reply> {
        let tenant = self
            .service
            .tenant_for_client(client.peer.ip())
            .await
            .map_err(|e| temporary(&e))?;
        Ok(Admission {
            tenant: tenant.map(|t| t.to_string()),
            auth: AuthAvailability::Disabled,
        })
    }

    async fn authenticate(
        &self,
        _client: &Client,
        _credentials: &Credentials,
    ) -> Result<String, Reply> {
        Err(Reply::new(
            535,
            [5, 7, 8],
            "Authentication is offered on the submission port only",
        ))
    }

    async fn sender(&self, _client: &Client, _sender: &MailFrom) -> Result<(), Reply> {
        Ok(())
    }

    async fn recipient(
        &self,
        client: &Client,
        sender: &MailFrom,
        recipient: &RcptTo,
    ) -> Result<(), Reply> {
        admit_recipient(&self.service, client, sender, &recipient.address).await
    }
}

/// Who may submit: a client that logged in, after STARTTLS, with a tenant's connector login
/// (before TLS only from loopback, and only when `[smtp] plaintext_auth_on_loopback` says so).
/// Mail without a login gets `530 5.7.0` at MAIL.
struct SubmissionPolicy {
    service: Arc<Signet>,
    plaintext_on_loopback: bool,
}

impl Policy for SubmissionPolicy {
    async fn connect(&self, client: &Client) -> Result<Admission, Reply> {
        let auth = if self.plaintext_on_loopback && client.peer.ip().is_loopback() {
            AuthAvailability::Always
        } else {
            AuthAvailability::AfterTls
        };
        Ok(Admission { tenant: None, auth })
    }

    async fn authenticate(
        &self,
        client: &Client,
        credentials: &Credentials,
    ) -> Result<String, Reply> {
        // RFC 4616 section 2: acting as another identity needs a right to do so, and no
        // connector login has one. Decided before the password is looked at, so it tells an
        // attacker nothing about the login.
        if credentials
            .authorization_id
            .as_ref()
            .is_some_and(|authzid| *authzid != credentials.username)
        {
            return Err(Reply::new(
                535,
                [5, 7, 8],
                "Authorization identity must be empty or the same as the login",
            ));
        }
        let login = self
            .service
            .login(&credentials.username)
            .await
            .map_err(|e| temporary(&e))?;
        let password = credentials.password.clone();
        // argon2id takes tens of milliseconds of CPU: not on the runtime's threads.
        let tenant = tokio::task::spawn_blocking(move || {
            signet_app::check_password(login.as_ref(), &password)
        })
        .await
        .map_err(|_| Reply::new(454, [4, 7, 0], "Temporary authentication failure"))?;
        if let Some(tenant) = tenant {
            info!(peer = %client.peer, user = %credentials.username, %tenant, "submission: logged in");
            Ok(tenant.to_string())
        } else {
            // The listener logs failures (rate-limited) and slows them down.
            Err(invalid_credentials())
        }
    }

    async fn sender(&self, client: &Client, _sender: &MailFrom) -> Result<(), Reply> {
        if client.tenant.is_some() {
            Ok(())
        } else {
            Err(Reply::new(530, [5, 7, 0], "Authentication required"))
        }
    }

    async fn recipient(
        &self,
        client: &Client,
        sender: &MailFrom,
        recipient: &RcptTo,
    ) -> Result<(), Reply> {
        admit_recipient(&self.service, client, sender, &recipient.address).await
    }
}

/// The rule both listeners share at RCPT: no tenant, no relaying; the sender's domain must be
/// one the tenant has accepted (`docs/reference.md`, "Which mail is signed", case 3); and the
/// recipient's domain must be a name (an address literal has no MX to route by, nor a domain to
/// sign for). The domains are the parsed mailboxes' (`Mailbox::domain`), whatever their local
/// parts hold.
async fn admit_recipient(
    service: &Signet,
    client: &Client,
    sender: &MailFrom,
    recipient: &Mailbox,
) -> Result<(), Reply> {
    let Some(tenant) = client.tenant.as_deref() else {
        return Err(Reply::new(
            550,
            [5, 7, 1],
            format!("Relaying denied: {} matches no connector", client.peer.ip()),
        ));
    };
    if recipient.domain().name().is_none() {
        return Err(Reply::new(
            550,
            [5, 1, 2],
            format!(
                "Address literals are not relayed: write to a domain, not {}",
                recipient.domain()
            ),
        ));
    }
    let Some(sender) = &sender.address else {
        return Ok(()); // bounces carry the null sender
    };
    let domain = sender.domain();
    let name = domain.name().map(str::parse::<DomainName>);
    let accepted = match (name, tenant.parse::<TenantName>()) {
        (Some(Ok(domain)), Ok(tenant)) => service
            .accepts(&tenant, &domain)
            .await
            .map_err(|e| temporary(&e))?,
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(Reply::new(
            550,
            [5, 7, 1],
            format!("Sender domain {domain} is not accepted for this tenant"),
        ))
    }
}

/// Accepted mail: a `Received:` line, the DKIM signature, then the spool; `250` only after.
struct SigningSink {
    service: Arc<Signet>,
    spool: Arc<Spool>,
    /// Tells the delivery worker about each new entry, so it goes out at once.
    fresh: mpsc::UnboundedSender<Fresh>,
    counters: Arc<Counters>,
    hostname: String,
    /// Why messages could not be stored (a full disk): the detail the client never sees.
    error_log: std::sync::Mutex<LogLimit>,
}

impl Sink for SigningSink {
    async fn message(&self, client: &Client, message: ReceivedMessage) -> Result<QueueId, Reply> {
        let tenant: TenantName = client
            .tenant
            .as_deref()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| Reply::new(554, [5, 7, 1], "Relaying denied"))?;
        let recipients: Vec<DomainName> = message
            .recipients
            .iter()
            .filter_map(|r| r.address.domain().name().and_then(|d| d.parse().ok()))
            .collect();
        let outcome = self
            .service
            .sign_message(
                &message.data,
                &recipients,
                &SigningPolicy::default(),
                Some(&tenant),
            )
            .await
            .map_err(|e| match e {
                AppError::Refused(why) => Reply::new(550, [5, 7, 1], why),
                other => temporary(&other),
            })?;
        let received = received_line(
            &message.helo,
            client.peer,
            &self.hostname,
            protocol(message.extended, client.tls, client.username.is_some()),
            time::OffsetDateTime::now_utc(),
        );
        let (data, signed_as, signed) = match outcome {
            SignOutcome::Signed {
                header,
                domain,
                selector,
            } => {
                let mut data =
                    Vec::with_capacity(header.len() + received.len() + message.data.len());
                data.extend_from_slice(header.as_bytes());
                data.extend_from_slice(received.as_bytes());
                data.extend_from_slice(&message.data);
                (data, format!("d={domain} s={selector}"), true)
            }
            SignOutcome::Unsigned(why) => (
                [received.as_bytes(), &message.data].concat(),
                format!("unsigned ({why})"),
                false,
            ),
        };
        let now = std::time::SystemTime::now();
        let envelope = Envelope {
            sender: message.sender.address.clone(),
            recipients: message
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
            tenant: tenant.to_string(),
            received_at: now,
            attempts: 0,
            next_attempt: now,
            eight_bit_mime: matches!(message.sender.body, signet_smtp::Body::EightBitMime),
            smtputf8: message.sender.smtputf8,
        };
        let spool = Arc::clone(&self.spool);
        let stored = tokio::task::spawn_blocking(move || {
            spool
                .store(&envelope, &data)
                .map(|id| (id, envelope, Arc::new(data)))
        })
        .await;
        let (id, envelope, data) = match stored {
            Ok(Ok(stored)) => stored,
            Ok(Err(error)) => {
                self.log_error(&tenant, &error);
                return Err(error.reply());
            }
            Err(error) => {
                self.log_error(&tenant, &error);
                return Err(Reply::new(
                    451,
                    [4, 3, 0],
                    "Temporary local problem, try again",
                ));
            }
        };
        // Only now: a message refused after signing was never signed mail that left.
        if signed {
            self.counters.count(Counter::Signed);
        }
        let from = message.sender.address.as_ref().map(ToString::to_string);
        info!(%id, %tenant, from = from.unwrap_or_default(), rcpts = message.recipients.len(), "accepted, {signed_as}");
        // The worker gets the message as stored, so it need not read it back; a stopped worker
        // finds it in the spool on restart.
        let _ = self.fresh.send(Fresh {
            id,
            entry: Some((envelope, data)),
        });
        Ok(id)
    }
}

impl SigningSink {
    /// Logs why a message was not stored, a few lines a minute at most (the listener logs and
    /// counts the refusal itself).
    fn log_error(&self, tenant: &TenantName, error: &dyn std::fmt::Display) {
        let allowed = self
            .error_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow(std::time::Instant::now());
        if let Some(suppressed) = allowed {
            tracing::error!(%tenant, suppressed, "relay: a message could not be stored: {error}");
        }
    }
}

fn temporary(error: &AppError) -> Reply {
    warn!("relay: {error}");
    Reply::new(451, [4, 3, 0], "Temporary local problem, try again")
}

/// `Received: from HELO ([IP]) by HOST (signet) with PROTOCOL; DATE` (RFC 5321 section 4.4).
fn received_line(
    helo: &str,
    peer: SocketAddr,
    hostname: &str,
    protocol: &str,
    now: time::OffsetDateTime,
) -> String {
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let helo: String = helo.chars().filter(char::is_ascii_graphic).collect();
    format!(
        "Received: from {helo} ([{}])\r\n\tby {hostname} (signet) with {protocol};\r\n\t{date}\r\n",
        peer.ip()
    )
}

/// The `with` keyword of `Received:`: SMTP after HELO, ESMTP after EHLO, with `S` for TLS and
/// `A` for AUTH (RFC 3848).
fn protocol(extended: bool, tls: bool, authenticated: bool) -> &'static str {
    match (extended, tls, authenticated) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_the_protocol_as_rfc_3848_does() {
        let cases = [
            ((false, false, false), "SMTP"),
            ((true, false, false), "ESMTP"),
            ((true, true, false), "ESMTPS"),
            ((true, false, true), "ESMTPA"),
            ((true, true, true), "ESMTPSA"),
        ];
        for ((extended, tls, authenticated), expected) in cases {
            assert_eq!(protocol(extended, tls, authenticated), expected);
        }
        let line = received_line(
            "client.example",
            "192.0.2.7:4567".parse().unwrap(),
            "signet.test",
            "ESMTPSA",
            time::macros::datetime!(2026-12-04 15:00 UTC),
        );
        assert_eq!(
            line,
            "Received: from client.example ([192.0.2.7])\r\n\tby signet.test (signet) with ESMTPSA;\r\n\tFri, 04 Dec 2026 15:00:00 +0000\r\n"
        );
    }
}
