//! The signing relay: connectors decide who may relay for which tenant, accepted mail is signed
//! (SPEC section 4) and spooled before `250`, and a worker delivers it to the smart host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use signet_app::{AppError, SignOutcome, SigningPolicy};
use signet_keys::{DomainName, TenantName};
use signet_smtp::spool::{Envelope, QueueId, Spool};
use signet_smtp::{
    Admission, AuthAvailability, Client, Credentials, Listener, ListenerConfig, MailFrom, Policy,
    RcptTo, ReceivedMessage, Reply, SessionConfig, Sink,
};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::Signet;
use crate::config::Config;

/// Starts the relay listener and the delivery worker; returns their tasks.
pub async fn spawn(
    config: &Config,
    service: Arc<Signet>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let Some(smart_host) = config.smtp.smart_host.clone() else {
        info!(
            "relay: off (set [smtp] smart_host to relay signed mail; delivery to MX is not implemented yet)"
        );
        return Ok(Vec::new());
    };
    let spool =
        Arc::new(Spool::open(config.data_dir.join("spool")).context("cannot open the spool")?);
    let wake = Arc::new(Notify::new());
    let listen = config.smtp.relay_listen;
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let hostname = config.smtp.hostname.clone();
    let session = SessionConfig {
        hostname: hostname.clone(),
        ..SessionConfig::default()
    };
    let listener = Listener::new(
        ListenerConfig {
            session,
            ..ListenerConfig::default()
        },
        Arc::new(ConnectorPolicy {
            service: Arc::clone(&service),
        }),
        Arc::new(SigningSink {
            service,
            spool: Arc::clone(&spool),
            wake: Arc::clone(&wake),
            hostname: hostname.clone(),
        }),
    );
    let mut listener_stop = stop.clone();
    let relay = tokio::spawn(async move {
        listener
            .serve_until(socket, async move {
                let _ = listener_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let delivery = signet_smtp::delivery::DeliveryConfig {
        next_hop: smart_host.clone(),
        hostname,
        queue_lifetime: Duration::from_secs(
            u64::try_from(config.smtp.queue_lifetime.seconds()).unwrap_or(0),
        ),
        timeout: Duration::from_mins(1),
    };
    let worker = tokio::spawn(signet_smtp::delivery::run(spool, delivery, wake, stop));
    info!(%listen, %smart_host, "relay: accepting from connector networks, delivering to the smart host");
    Ok(vec![relay, worker])
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
        _recipient: &RcptTo,
    ) -> Result<(), Reply> {
        let Some(tenant) = client.tenant.as_deref() else {
            return Err(Reply::new(
                550,
                [5, 7, 1],
                format!("Relaying denied: {} matches no connector", client.peer.ip()),
            ));
        };
        if sender.address.is_empty() {
            return Ok(()); // bounces carry the null sender
        }
        let domain = sender.address.rsplit_once('@').map_or("", |(_, d)| d);
        let accepted = match (domain.parse::<DomainName>(), tenant.parse::<TenantName>()) {
            (Ok(domain), Ok(tenant)) => self
                .service
                .domains(Some(&tenant))
                .await
                .map_err(|e| temporary(&e))?
                .iter()
                .any(|d| d.name == domain),
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
}

/// Accepted mail: a `Received:` line, the DKIM signature, then the spool; `250` only after.
struct SigningSink {
    service: Arc<Signet>,
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    hostname: String,
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
            .filter_map(|r| r.address.rsplit_once('@').and_then(|(_, d)| d.parse().ok()))
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
        let received = received_line(&message.helo, client.peer, &self.hostname);
        let (data, signed_as) = match outcome {
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
                (data, format!("d={domain} s={selector}"))
            }
            SignOutcome::Unsigned(why) => (
                [received.as_bytes(), &message.data].concat(),
                format!("unsigned ({why})"),
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
        let id = tokio::task::spawn_blocking(move || spool.store(&envelope, &data))
            .await
            .map_err(|_| Reply::new(451, [4, 3, 0], "Temporary local problem, try again"))?
            .map_err(|e| e.reply())?;
        info!(%id, %tenant, from = %message.sender.address, rcpts = message.recipients.len(), "accepted, {signed_as}");
        self.wake.notify_one();
        Ok(id)
    }
}

fn temporary(error: &AppError) -> Reply {
    warn!("relay: {error}");
    Reply::new(451, [4, 3, 0], "Temporary local problem, try again")
}

/// `Received: from HELO ([IP]) by HOST (signet) with ESMTP; DATE` (RFC 5321 section 4.4).
fn received_line(helo: &str, peer: SocketAddr, hostname: &str) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let helo: String = helo.chars().filter(char::is_ascii_graphic).collect();
    format!(
        "Received: from {helo} ([{}])\r\n\tby {hostname} (signet) with ESMTP;\r\n\t{date}\r\n",
        peer.ip()
    )
}
