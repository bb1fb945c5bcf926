//! The data directory and `signet.toml`: raw (serde) -> typed, as ripgrep does with its args.
//!
//! Precedence: command-line flags, then the file, then the defaults written here.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use signet_keys::{
    DomainName, KeyZone, MINIMUM_ROTATION_INTERVAL, MasterKey, RotationPolicy, Span,
};
use signet_smtp::ThrottleConfig;

pub const CONFIG_FILE: &str = "signet.toml";
pub const DATABASE_FILE: &str = "signet.db";
pub const MASTER_KEY_FILE: &str = "master.key";
/// The self-signed certificate (and its key) for submission STARTTLS, made on first `serve`.
pub const SELF_SIGNED_CERTIFICATE: &str = "smtp-tls.crt";
pub const SELF_SIGNED_KEY: &str = "smtp-tls.key";
/// Environment variable that may hold the master key (base64) instead of a file.
pub const MASTER_KEY_ENV: &str = "SIGNET_MASTER_KEY";

/// `signet.toml` as written. Unknown keys are errors, so a typo never goes unnoticed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    key_zone: String,
    master_key_file: Option<PathBuf>,
    #[serde(default)]
    resolver: RawResolver,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    rotation: RawRotation,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    http: RawHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResolver {
    #[serde(default)]
    nameservers: Vec<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    listen: Option<String>,
    ttl: Option<u32>,
    #[serde(default)]
    nameservers: Vec<String>,
    #[serde(default)]
    secondaries: Vec<String>,
    tcp_timeout: Option<String>,
    tcp_connections: Option<usize>,
    tcp_connections_per_address: Option<usize>,
    rrl_responses_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    delay: Option<String>,
    retention: Option<String>,
    check_interval: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    relay_listen: Option<String>,
    submission_listen: Option<String>,
    smart_host: Option<String>,
    hostname: Option<String>,
    queue_lifetime: Option<String>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    plaintext_auth_on_loopback: Option<bool>,
    smart_host_tls: Option<String>,
    smart_host_ca: Option<PathBuf>,
    smart_host_login: Option<String>,
    smart_host_password_file: Option<PathBuf>,
    mx_port: Option<u16>,
    timeout: Option<String>,
    data_timeout: Option<String>,
    max_connections: Option<usize>,
    auth_delay: Option<String>,
    auth_failures: Option<u32>,
    auth_lockout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    metrics_token: Option<String>,
}

/// The installation's settings, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub key_zone: KeyZone,
    pub master_key_file: PathBuf,
    pub resolver: ResolverSettings,
    pub dns: DnsSettings,
    pub rotation: RotationPolicy,
    pub check_interval: Span,
    pub rotation_interval: Option<Span>,
    pub smtp: SmtpSettings,
    pub http: HttpSettings,
}

/// The HTTP API.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where it listens; `None` when `[http] listen = ""` turns it off.
    pub listen: Option<SocketAddr>,
    /// The bearer token `/metrics` asks for; `None`: `/metrics` is open.
    pub metrics_token: Option<MetricsToken>,
}

/// `[http] metrics_token`; `Debug` does not show it.
#[derive(Clone)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// The signing gateway.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub relay_listen: SocketAddr,
    /// The submission listener (STARTTLS, AUTH with a connector login).
    pub submission_listen: SocketAddr,
    /// The submission listener's certificate chain and key (PEM). Without them signet makes a
    /// self-signed certificate for `hostname` in the data directory.
    pub tls: TlsFiles,
    /// Offer AUTH before STARTTLS to loopback clients (local test setups); never to others.
    pub plaintext_auth_on_loopback: bool,
    /// Where accepted mail goes (`host:port`); without it no relay is started.
    pub smart_host: Option<String>,
    /// STARTTLS towards the smart host.
    pub smart_host_tls: SmartHostTls,
    /// CA certificates (PEM) that a `required` smart host's certificate must chain to; default:
    /// the system's.
    pub smart_host_ca: Option<PathBuf>,
    /// A login for AUTH at the smart host: the user, and the file holding the password.
    pub smart_host_login: Option<(String, PathBuf)>,
    /// The port of recipients' MX hosts when there is no smart host (25; another value is for
    /// tests and unusual networks).
    pub mx_port: u16,
    /// This host's name in EHLO, `Received:` and DSNs.
    pub hostname: String,
    /// How long a message may wait in the queue before it bounces.
    pub queue_lifetime: Span,
    /// Each read and write of a client session (Postfix's `smtpd_timeout`).
    pub timeout: Duration,
    /// One message's data as a whole.
    pub data_timeout: Duration,
    /// Most sessions at once, per listener.
    pub max_connections: usize,
    /// How failed AUTH attempts slow down and lock out.
    pub auth_throttle: ThrottleConfig,
}

/// STARTTLS towards the smart host (Postfix's `smtp_tls_security_level`, roughly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmartHostTls {
    /// Plain SMTP.
    Off,
    /// STARTTLS when offered, certificate not checked (Postfix `may`).
    Opportunistic,
    /// STARTTLS or no delivery, with a certificate that verifies (Postfix `secure`).
    Required,
}

/// Where the submission listener's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// signet makes (once) and keeps these files itself: no `tls_certificate` was configured.
    pub self_signed: bool,
}

#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// Upstream servers; empty means the system resolver (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Span,
}

#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub listen: SocketAddr,
    pub ttl: u32,
    pub nameservers: Vec<String>,
    pub secondaries: Vec<SocketAddr>,
    /// Deadlines, connection caps and response rate limiting.
    pub limits: signet_dns_server::Limits,
}

impl Config {
    /// Reads `DIR/signet.toml`, explaining what to do when there is no installation.
    pub fn load(data_dir: &Path) -> Result<Config> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no signet installation in {} ({CONFIG_FILE} not found); run `signet init --key-zone ZONE` first, or pass --data-dir",
                data_dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::parse(data_dir, &text).map_err(|e| locate(&path, &text, &e))
    }

    fn parse(data_dir: &Path, text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)?;
        let zone: DomainName = raw.key_zone.parse().context("key_zone")?;
        let span = |value: Option<String>, default: Span, name: &str| -> Result<Span> {
            value.map_or(Ok(default), |v| v.parse().with_context(|| name.to_string()))
        };
        let rotation = RotationPolicy {
            delay: span(raw.rotation.delay, Span::hours(96), "[rotation] delay")?,
            retention: span(
                raw.rotation.retention,
                Span::days(7),
                "[rotation] retention",
            )?,
        };
        let rotation_interval = match raw.rotation.interval {
            Some(v) => {
                let interval: Span = v.parse().context("[rotation] interval")?;
                if interval < MINIMUM_ROTATION_INTERVAL {
                    bail!(
                        "[rotation] interval is {interval}; the minimum is {MINIMUM_ROTATION_INTERVAL}"
                    );
                }
                Some(interval)
            }
            None => None,
        };
        let http = HttpSettings {
            listen: match raw.http.listen.as_deref().map(str::trim) {
                Some("") => None,
                text => Some(address(
                    text.unwrap_or("127.0.0.1:8080"),
                    8080,
                    "[http] listen",
                )?),
            },
            metrics_token: match raw.http.metrics_token.map(|t| t.trim().to_string()) {
                Some(token) if token.is_empty() || token.chars().any(char::is_control) => {
                    bail!(
                        "[http] metrics_token: must be non-empty printable text; remove the line to leave /metrics open"
                    )
                }
                token => token.map(MetricsToken),
            },
        };
        let smtp = smtp_settings(raw.smtp, data_dir)?;
        let limits = dns_limits(&raw.dns)?;
        Ok(Config {
            data_dir: data_dir.to_path_buf(),
            master_key_file: data_dir.join(
                raw.master_key_file
                    .unwrap_or_else(|| MASTER_KEY_FILE.into()),
            ),
            resolver: ResolverSettings {
                nameservers: addresses(&raw.resolver.nameservers, 53, "[resolver] nameservers")?,
                timeout: span(
                    raw.resolver.timeout,
                    Span::seconds_from(5),
                    "[resolver] timeout",
                )?,
            },
            dns: DnsSettings {
                listen: address(
                    raw.dns.listen.as_deref().unwrap_or("127.0.0.1:5300"),
                    53,
                    "[dns] listen",
                )?,
                ttl: raw.dns.ttl.unwrap_or(3600),
                nameservers: raw.dns.nameservers,
                secondaries: addresses(&raw.dns.secondaries, 53, "[dns] secondaries")?,
                limits,
            },
            key_zone: KeyZone::new(zone),
            rotation,
            check_interval: span(
                raw.rotation.check_interval,
                Span::hours(1),
                "[rotation] check_interval",
            )?,
            rotation_interval,
            smtp,
            http,
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// The master key, from `SIGNET_MASTER_KEY` or the key file (which must be private).
    pub fn master_key(&self) -> Result<MasterKey> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return MasterKey::from_text(&text)
                .with_context(|| format!("{MASTER_KEY_ENV} is not a master key"));
        }
        let path = &self.master_key_file;
        let cannot = || format!("cannot read the master key {}", path.display());
        let meta = fs::metadata(path).with_context(cannot)?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "the master key {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            );
        }
        let text = zeroize::Zeroizing::new(fs::read_to_string(path).with_context(cannot)?);
        MasterKey::from_text(&text)
            .with_context(|| format!("the master key {} is malformed", path.display()))
    }
}

/// A mistake in `signet.toml`, told with the file, the line and column, the key, and the line
/// itself with the value underlined, as rustc and the `toml` crate show them:
///
/// ```text
/// /etc/signet/signet.toml, line 18, column 9: [rotation] delay: 'an hour' is not a duration: …
///    |
/// 18 | delay = "an hour"
///    |         ^^^^^^^^^
/// ```
///
/// A syntax or type error carries its span from the parser. A value the typed settings refuse
/// is found by its key: every message [`Config::parse`] writes starts with the key it is about
/// (`[rotation] delay: …`, `key_zone: …`).
fn locate(path: &Path, text: &str, error: &anyhow::Error) -> anyhow::Error {
    let file = path.display();
    let (span, message) = if let Some(e) = error.downcast_ref::<toml::de::Error>() {
        // A missing key is reported at the start of the document (an empty span there, or the
        // whole of it): that points nowhere in particular.
        let span = e
            .span()
            .filter(|s| !(s.start == 0 && (s.is_empty() || s.end >= text.trim_end().len())));
        let key = span.as_ref().and_then(|s| key_at(text, s.start));
        let message = match key {
            Some(key) => format!("{key}: {}", e.message().trim_end()),
            None => e.message().trim_end().to_string(),
        };
        (span, message)
    } else {
        let message = format!("{error:#}");
        (value_span(text, &message), message)
    };
    let Some(span) = span else {
        return anyhow::anyhow!("invalid {file}: {message}");
    };
    let (line, column) = line_and_column(text, span.start);
    let content = text.lines().nth(line - 1).unwrap_or_default();
    let width = span
        .len()
        .min(content.chars().count().saturating_sub(column - 1))
        .max(1);
    let gutter = " ".repeat(line.to_string().len());
    anyhow::anyhow!(
        "{file}, line {line}, column {column}: {message}\n{gutter} |\n{line} | {content}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(width)
    )
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The key whose name or value covers byte `offset`: `key_zone`, `[rotation] delay`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let covers = |span: std::ops::Range<usize>| span.contains(&offset);
    for (key, value) in document.get_ref() {
        if let toml::de::DeValue::Table(table) = value.get_ref() {
            for (inner, inner_value) in table {
                if covers(inner.span()) || covers(inner_value.span()) {
                    return Some(format!("[{}] {}", key.get_ref(), inner.get_ref()));
                }
            }
        }
        if covers(key.span()) || covers(value.span()) {
            return Some(key.get_ref().to_string());
        }
    }
    None
}

/// Where the value of the key a message starts with is: `[rotation] delay: …` or `key_zone: …`.
fn value_span(text: &str, message: &str) -> Option<std::ops::Range<usize>> {
    let (table, rest) = match message.strip_prefix('[') {
        Some(rest) => {
            let (table, rest) = rest.split_once("] ")?;
            (Some(table), rest)
        }
        None => (None, message),
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let key = &rest[..end];
    let document = toml::de::DeTable::parse(text).ok()?;
    let entries = match table {
        Some(table) => match entry(document.get_ref(), table)?.get_ref() {
            toml::de::DeValue::Table(entries) => entries,
            _ => return None,
        },
        None => document.get_ref(),
    };
    entry(entries, key).map(toml::Spanned::span)
}

fn entry<'t, 'i>(
    table: &'t toml::de::DeTable<'i>,
    name: &str,
) -> Option<&'t toml::Spanned<toml::de::DeValue<'i>>> {
    table
        .iter()
        .find(|(key, _)| key.get_ref() == name)
        .map(|(_, value)| value)
}

/// The machine's host name, for EHLO and `Received:` when `[smtp] hostname` is not set.
fn system_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The `[smtp]` table, validated.
fn smtp_settings(raw: RawSmtp, data_dir: &Path) -> Result<SmtpSettings> {
    let limits = session_limits(&raw)?;
    let tls = match (raw.tls_certificate, raw.tls_key) {
        (Some(certificate), Some(key)) => TlsFiles {
            certificate: data_dir.join(certificate),
            key: data_dir.join(key),
            self_signed: false,
        },
        (None, None) => TlsFiles {
            certificate: data_dir.join(SELF_SIGNED_CERTIFICATE),
            key: data_dir.join(SELF_SIGNED_KEY),
            self_signed: true,
        },
        _ => bail!("[smtp] tls_certificate and tls_key go together: set both or neither"),
    };
    let smart_host = match raw.smart_host {
        Some(host)
            if host
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok()) =>
        {
            Some(host)
        }
        Some(host) => {
            bail!("[smtp] smart_host: '{host}' is not host:port, e.g. mail.example.net:25")
        }
        None => None,
    };
    let smart_host_tls = match raw.smart_host_tls.as_deref() {
        None | Some("opportunistic") => SmartHostTls::Opportunistic,
        Some("off") => SmartHostTls::Off,
        Some("required") => SmartHostTls::Required,
        Some(other) => {
            bail!("[smtp] smart_host_tls: '{other}' is not one of off, opportunistic, required")
        }
    };
    let smart_host_login = match (raw.smart_host_login, raw.smart_host_password_file) {
        (Some(user), Some(file)) => Some((user, data_dir.join(file))),
        (None, None) => None,
        _ => bail!(
            "[smtp] smart_host_login and smart_host_password_file go together: set both or neither"
        ),
    };
    if smart_host_login.is_some() && smart_host_tls == SmartHostTls::Off {
        bail!(
            "[smtp] smart_host_login needs smart_host_tls: a password is never sent in the clear"
        );
    }
    Ok(SmtpSettings {
        timeout: limits.timeout,
        data_timeout: limits.data_timeout,
        max_connections: limits.max_connections,
        auth_throttle: limits.auth_throttle,
        mx_port: raw.mx_port.unwrap_or(25),
        smart_host_tls,
        smart_host_ca: raw.smart_host_ca.map(|file| data_dir.join(file)),
        smart_host_login,
        relay_listen: address(
            raw.relay_listen.as_deref().unwrap_or("127.0.0.1:2525"),
            25,
            "[smtp] relay_listen",
        )?,
        submission_listen: address(
            raw.submission_listen.as_deref().unwrap_or("127.0.0.1:2587"),
            587,
            "[smtp] submission_listen",
        )?,
        tls,
        plaintext_auth_on_loopback: raw.plaintext_auth_on_loopback.unwrap_or(false),
        smart_host,
        hostname: raw.hostname.unwrap_or_else(system_hostname),
        queue_lifetime: raw
            .queue_lifetime
            .map_or(Ok(Span::days(5)), |v| v.parse())
            .context("[smtp] queue_lifetime")?,
    })
}

/// The `[dns]` limits, each defaulting to the server's own default.
fn dns_limits(raw: &RawDns) -> Result<signet_dns_server::Limits> {
    let defaults = signet_dns_server::Limits::default();
    let tcp_timeout = match &raw.tcp_timeout {
        Some(text) => {
            let span: Span = text.parse().context("[dns] tcp_timeout")?;
            let seconds = u64::try_from(span.seconds()).unwrap_or(0);
            if seconds == 0 {
                bail!("[dns] tcp_timeout is {span}; it must be at least 1s");
            }
            std::time::Duration::from_secs(seconds)
        }
        None => defaults.tcp_timeout,
    };
    let count = |value: Option<usize>, default: usize, name: &str| match value {
        Some(0) => bail!("[dns] {name} is 0; it must be at least 1"),
        value => Ok(value.unwrap_or(default)),
    };
    Ok(signet_dns_server::Limits {
        tcp_timeout,
        tcp_connections: count(
            raw.tcp_connections,
            defaults.tcp_connections,
            "tcp_connections",
        )?,
        tcp_connections_per_address: count(
            raw.tcp_connections_per_address,
            defaults.tcp_connections_per_address,
            "tcp_connections_per_address",
        )?,
        rrl_responses_per_second: raw
            .rrl_responses_per_second
            .unwrap_or(defaults.rrl_responses_per_second),
    })
}

/// The limits of `[smtp]`: deadlines, sessions, the AUTH throttle.
struct SessionLimits {
    timeout: Duration,
    data_timeout: Duration,
    max_connections: usize,
    auth_throttle: ThrottleConfig,
}

fn session_limits(raw: &RawSmtp) -> Result<SessionLimits> {
    let defaults = signet_smtp::ListenerConfig::default();
    let duration = |value: Option<&str>, default: Duration, name: &str| -> Result<Duration> {
        let Some(value) = value else {
            return Ok(default);
        };
        let span: Span = value.parse().with_context(|| format!("[smtp] {name}"))?;
        Ok(Duration::from_secs(
            u64::try_from(span.seconds()).unwrap_or(0),
        ))
    };
    let positive = |value: Duration, name: &str| -> Result<Duration> {
        if value.is_zero() {
            bail!("[smtp] {name} must be at least 1s");
        }
        Ok(value)
    };
    let timeout = positive(
        duration(raw.timeout.as_deref(), defaults.command_timeout, "timeout")?,
        "timeout",
    )?;
    let data_timeout = positive(
        duration(
            raw.data_timeout.as_deref(),
            defaults.data_timeout,
            "data_timeout",
        )?,
        "data_timeout",
    )?;
    let max_connections = match raw.max_connections {
        Some(0) => bail!("[smtp] max_connections must be at least 1"),
        Some(n) => n,
        None => defaults.max_connections,
    };
    let throttle = defaults.auth_throttle;
    let auth_delay = duration(raw.auth_delay.as_deref(), throttle.delay, "auth_delay")?;
    let auth_throttle = ThrottleConfig {
        delay: auth_delay,
        // The delay doubles per failure up to 32 times the first one (32 s by default).
        max_delay: auth_delay * 32,
        max_failures: raw.auth_failures.unwrap_or(throttle.max_failures),
        lockout: positive(
            duration(
                raw.auth_lockout.as_deref(),
                throttle.lockout,
                "auth_lockout",
            )?,
            "auth_lockout",
        )?,
        ..throttle
    };
    Ok(SessionLimits {
        timeout,
        data_timeout,
        max_connections,
        auth_throttle,
    })
}

fn address(text: &str, default_port: u16, what: &str) -> Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .with_context(|| format!("{what}: '{text}' is not an address like 127.0.0.1:53"))
}

fn addresses(texts: &[String], default_port: u16, what: &str) -> Result<Vec<SocketAddr>> {
    texts
        .iter()
        .map(|t| address(t, default_port, what))
        .collect()
}

/// Creates a new installation: the directory (0700), `signet.toml`, the master key (0600).
/// Refuses to overwrite anything; the caller creates the database last.
pub fn init(data_dir: &Path, key_zone: &DomainName, resolvers: &[String]) -> Result<Config> {
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        bail!(
            "{} already exists; this data directory is initialised",
            config_path.display()
        );
    }
    addresses(resolvers, 53, "--resolver")?;
    crate::permissions::make_private_dir(data_dir)?;
    let key_path = data_dir.join(MASTER_KEY_FILE);
    let master = MasterKey::generate()?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot create the master key {}", key_path.display()))?;
    file.write_all(master.to_text().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    let text = template(key_zone, resolvers);
    let config = Config::parse(data_dir, &text)?;
    fs::write(&config_path, text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Ok(config)
}

fn template(key_zone: &DomainName, resolvers: &[String]) -> String {
    let nameservers = resolvers
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let resolver_line = if resolvers.is_empty() {
        "# nameservers = [\"127.0.0.1:53\"]   # empty: the system resolver".to_string()
    } else {
        format!("nameservers = [{nameservers}]")
    };
    format!(
        r#"# signet configuration. Command-line flags override these settings.

# The DNS zone signet serves; customers' CNAMEs point into it.
key_zone = "{key_zone}"
# master_key_file = "{MASTER_KEY_FILE}"   # relative to this directory; or set {MASTER_KEY_ENV}

[resolver]   # used to check customers' CNAMEs and to see new keys as verifiers will
{resolver_line}
timeout = "5s"

[dns]        # the authoritative server for the key zone
listen = "127.0.0.1:5300"
ttl = 3600
# nameservers = ["ns1.{key_zone}"]
# secondaries = ["192.0.2.53:53"]
# tcp_timeout = "10s"                  # deadline of every TCP read and write
# tcp_connections = 512                # TCP connections at once; beyond: closed at once
# tcp_connections_per_address = 16     # the same, per client address
# rrl_responses_per_second = 20        # UDP responses per /24 (/56) a second; 0: no limit

[rotation]
delay = "96h"          # from rotate to the earliest switch-over (RotateOnDate)
retention = "7d"       # how long a replaced key stays published
check_interval = "1h"  # how often CNAMEs are re-checked
# interval = "90d"     # automatic rotation, off unless set (minimum 5d)

[smtp]       # the signing gateway: relay and submission listeners, delivery
relay_listen = "127.0.0.1:2525"
submission_listen = "127.0.0.1:2587"
# smart_host = "mail.example.net:25"   # where signed mail goes; unset: the recipients' MX
# smart_host_tls = "opportunistic"     # off | opportunistic (STARTTLS if offered) | required
# smart_host_ca = "smart-host-ca.pem"  # for required: CAs to trust; default: the system's
# smart_host_login = "relay-user"      # AUTH (PLAIN or LOGIN) after STARTTLS, password in
# smart_host_password_file = "smart-host.password"   # this file (mode 0600)
# hostname = "signet.example.net"      # EHLO, Received:, DSNs; default: this machine's name
queue_lifetime = "5d"                  # then undeliverable mail bounces to its sender
# tls_certificate = "/etc/ssl/signet.pem"   # submission STARTTLS (PEM chain; relative to this
# tls_key = "/etc/ssl/private/signet.key"   # directory); default: a self-signed certificate
# plaintext_auth_on_loopback = false        # AUTH before STARTTLS, for loopback clients only
# timeout = "5m"          # each read and write of a client session (Postfix's smtpd_timeout)
# data_timeout = "10m"    # one message's data as a whole, then 451 4.4.2
# max_connections = 500   # sessions at once per listener (and 50 per address), then 421
# auth_delay = "1s"       # after a failed AUTH; doubles per failure (login, address) up to 32x
# auth_failures = 10      # failures of one login before it is locked out (0: never)
# auth_lockout = "15m"    # how long; meanwhile even the right password gets 535 5.7.8

[http]       # the HTTP API (plain HTTP: keep it on loopback or behind a TLS proxy)
listen = "127.0.0.1:8080"              # "" turns it off
# metrics_token = "…"                  # /metrics then needs Authorization: Bearer <this>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_to_the_defaults() {
        let zone: DomainName = "dkim.example.net".parse().unwrap();
        let config = Config::parse(
            Path::new("/d"),
            &template(&zone, &["127.0.0.1:5353".into()]),
        )
        .unwrap();
        assert_eq!(config.rotation, RotationPolicy::default());
        assert_eq!(config.check_interval, Span::hours(1));
        assert_eq!(
            config.resolver.nameservers,
            ["127.0.0.1:5353".parse().unwrap()]
        );
        assert_eq!(config.master_key_file, Path::new("/d/master.key"));
        assert_eq!(config.rotation_interval, None);
        let listener = signet_smtp::ListenerConfig::default();
        assert_eq!(config.smtp.timeout, listener.command_timeout);
        assert_eq!(config.smtp.data_timeout, listener.data_timeout);
        assert_eq!(config.smtp.max_connections, listener.max_connections);
        assert_eq!(config.smtp.auth_throttle, listener.auth_throttle);
        assert_eq!(config.http.listen, Some("127.0.0.1:8080".parse().unwrap()));
    }

    /// What `signet` prints for `text` as `/d/signet.toml`.
    fn located(text: &str) -> String {
        let error = Config::parse(Path::new("/d"), text).unwrap_err();
        locate(Path::new("/d/signet.toml"), text, &error).to_string()
    }

    #[test]
    fn mistakes_are_shown_with_file_line_column_and_key() {
        let zone = "key_zone = \"a.example\"\n";
        for (text, first_line, underline) in [
            (
                format!("{zone}[dns]\nttl = \"an hour\"\n"),
                "/d/signet.toml, line 3, column 7: [dns] ttl: invalid type: string \"an hour\", expected u32",
                "3 | ttl = \"an hour\"\n  |       ^^^^^^^^^",
            ),
            (
                format!("{zone}\n[rotation]\ndelay = \"an hour\"\n"),
                "/d/signet.toml, line 4, column 9: [rotation] delay: ",
                "4 | delay = \"an hour\"\n  |         ^^^^^^^^^",
            ),
            (
                format!("{zone}[rotation]\ndelya = \"1h\"\n"),
                "/d/signet.toml, line 3, column 1: [rotation] delya: unknown field `delya`, expected one of",
                "3 | delya = \"1h\"\n  | ^^^^^",
            ),
            (
                "key_zone = \"x\"\n".to_string(),
                "/d/signet.toml, line 1, column 12: key_zone: 'x' is not a valid domain name",
                "1 | key_zone = \"x\"\n  |            ^^^",
            ),
            (
                format!("{zone}[smtp]\nrelay_listen = \"localhost\"\n"),
                "/d/signet.toml, line 3, column 16: [smtp] relay_listen: 'localhost' is not an address",
                "3 | relay_listen = \"localhost\"",
            ),
            (
                format!("{zone}[dns\n"),
                "/d/signet.toml, line 2, column 5: ",
                "2 | [dns",
            ),
        ] {
            let shown = located(&text);
            assert!(shown.starts_with(first_line), "{text}:\n{shown}");
            assert!(shown.contains(underline), "{text}:\n{shown}");
        }
        let shown = located("[dns]\nttl = 5\n");
        assert!(
            shown.starts_with("invalid /d/signet.toml: missing field `key_zone`"),
            "{shown}"
        );
    }

    #[test]
    fn the_http_api_listens_where_told_or_not_at_all() {
        let listen = |http: &str| {
            let text = format!("key_zone = \"a.example\"\n[http]\n{http}");
            Config::parse(Path::new("/d"), &text).map(|c| c.http.listen)
        };
        assert_eq!(listen("").unwrap(), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(listen("listen = \"\"").unwrap(), None);
        assert_eq!(
            listen("listen = \"::1\"").unwrap(),
            Some("[::1]:8080".parse().unwrap())
        );
        let err = format!("{:#}", listen("listen = \"localhost\"").unwrap_err());
        assert!(err.contains("[http] listen"), "{err}");
    }

    #[test]
    fn the_metrics_token_is_optional_and_never_shown() {
        let token = |http: &str| {
            let text = format!("key_zone = \"a.example\"\n[http]\n{http}");
            Config::parse(Path::new("/d"), &text).map(|c| c.http.metrics_token)
        };
        assert!(token("").unwrap().is_none());
        let set = token("metrics_token = \"s3cret-scrape\"").unwrap().unwrap();
        assert_eq!(set.0, "s3cret-scrape");
        assert!(!format!("{set:?}").contains("s3cret"));
        let err = format!("{:#}", token("metrics_token = \" \"").unwrap_err());
        assert!(err.contains("[http] metrics_token"), "{err}");
    }

    #[test]
    fn bad_settings_name_the_problem() {
        for (text, why) in [
            ("key_zone = \"x\"", "key_zone"),
            ("key_zone = \"a.example\"\ntypo = 1", "unknown field `typo`"),
            (
                "key_zone = \"a.example\"\n[rotation]\ndelay = \"4 days\"",
                "[rotation] delay",
            ),
            (
                "key_zone = \"a.example\"\n[rotation]\ninterval = \"1d\"",
                "minimum is 5d",
            ),
            (
                "key_zone = \"a.example\"\n[resolver]\nnameservers = [\"dns.google\"]",
                "[resolver] nameservers",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\nsmart_host_tls = \"always\"",
                "not one of off, opportunistic, required",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\nsmart_host_login = \"u\"",
                "go together",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\nsmart_host_tls = \"off\"\nsmart_host_login = \"u\"\nsmart_host_password_file = \"p\"",
                "never sent in the clear",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\ntls_key = \"k.pem\"",
                "tls_certificate and tls_key go together",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\ndata_timeout = \"0s\"",
                "[smtp] data_timeout must be at least 1s",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\nauth_lockout = \"soon\"",
                "[smtp] auth_lockout",
            ),
            (
                "key_zone = \"a.example\"\n[smtp]\nmax_connections = 0",
                "[smtp] max_connections must be at least 1",
            ),
        ] {
            let err = format!("{:#}", Config::parse(Path::new("/d"), text).unwrap_err());
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn dns_limits_default_and_parse() {
        let zone: DomainName = "dkim.example.net".parse().unwrap();
        let config = Config::parse(Path::new("/d"), &template(&zone, &[])).unwrap();
        assert_eq!(config.dns.limits, signet_dns_server::Limits::default());
        let text = "key_zone = \"a.example\"\n[dns]\ntcp_timeout = \"3s\"\ntcp_connections = 9\n\
                    tcp_connections_per_address = 2\nrrl_responses_per_second = 0";
        let limits = Config::parse(Path::new("/d"), text).unwrap().dns.limits;
        assert_eq!(
            (
                limits.tcp_timeout.as_secs(),
                limits.tcp_connections,
                limits.tcp_connections_per_address,
                limits.rrl_responses_per_second
            ),
            (3, 9, 2, 0)
        );
        for (dns, why) in [
            ("tcp_timeout = \"0s\"", "[dns] tcp_timeout is 0s"),
            ("tcp_timeout = \"soon\"", "[dns] tcp_timeout"),
            (
                "tcp_connections_per_address = 0",
                "[dns] tcp_connections_per_address is 0",
            ),
        ] {
            let text = format!("key_zone = \"a.example\"\n[dns]\n{dns}");
            let err = format!("{:#}", Config::parse(Path::new("/d"), &text).unwrap_err());
            assert!(err.contains(why), "{dns}: {err}");
        }
    }
}
