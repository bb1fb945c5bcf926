//! `signet verify`: DKIM, SPF, DMARC and ARC for one message, as a report or JSON, and the
//! `Authentication-Results` header this host would add. Exit status: 0 pass, 1 fail,
//! 75 temporary error (a DNS lookup timed out or failed; try again later).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use signet_verifier::{
    Envelope, PublicSuffixList, RecordTable, Resolution, Verdict, Verifier, VerifierConfig,
};

use crate::config::{self, Config};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The message file; `-` reads standard input. Bare LF line ends are read as CRLF.
    pub message: PathBuf,
    /// The connecting client's IP address (for SPF).
    #[arg(long)]
    pub client_ip: Option<IpAddr>,
    /// The name the client gave in HELO/EHLO (for SPF).
    #[arg(long)]
    pub helo: Option<String>,
    /// The envelope sender (MAIL FROM); an empty value is the null sender.
    #[arg(long)]
    pub mail_from: Option<String>,
    /// This host's name in Authentication-Results (default: the machine's host name).
    #[arg(long)]
    pub authserv_id: Option<String>,
    /// Answer DNS from this file instead of a resolver: `name TYPE value` per line (TXT, A,
    /// AAAA, MX, PTR, CNAME; value TIMEOUT times out; unlisted names are NXDOMAIN).
    #[arg(long, value_name = "FILE")]
    pub records: Option<PathBuf>,
    /// Verify as of this time: Unix seconds or an RFC 3339 date.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print a JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// An upstream DNS server (repeatable); default: `[resolver] nameservers` in signet.toml, or
    /// the system resolver.
    #[arg(long = "nameserver", value_name = "ADDR:PORT")]
    pub nameservers: Vec<SocketAddr>,
    /// A domain whose passing ARC seal may override a DMARC failure (repeatable).
    #[arg(long = "trusted-arc-sealer", value_name = "DOMAIN")]
    pub trusted_arc_sealers: Vec<String>,
    /// A Public Suffix List file to use instead of the built-in copy.
    #[arg(long, value_name = "FILE")]
    pub public_suffix_list: Option<PathBuf>,
    /// Seconds before a DNS query counts as timed out (temperror).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

pub async fn run(data_dir: &Path, args: VerifyArgs) -> Result<()> {
    let raw = read_message(&args.message)?;
    let raw = signet_verifier::to_crlf(&raw);
    let at = args
        .at
        .as_deref()
        .map(signet_verifier::parse_time)
        .transpose()?;
    let verifier = Verifier::new(verifier_config(data_dir, &args)?).await?;
    let envelope = Envelope {
        client_ip: args.client_ip,
        helo: args.helo.clone(),
        mail_from: args.mail_from.clone(),
    };
    let report = verifier.verify(&raw, &envelope, at).await;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.render())?;
    }
    stdout.flush()?;
    match report.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => std::process::exit(1),
        Verdict::TempError => std::process::exit(75),
    }
}

fn verifier_config(data_dir: &Path, args: &VerifyArgs) -> Result<VerifierConfig> {
    let installation = if data_dir.join(config::CONFIG_FILE).exists() {
        Some(Config::load(data_dir)?)
    } else {
        None
    };
    let resolution = if let Some(path) = &args.records {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Resolution::Answers(Arc::new(RecordTable::parse(&text)?))
    } else if !args.nameservers.is_empty() {
        Resolution::Nameservers(args.nameservers.clone())
    } else {
        match installation.as_ref().map(|c| &c.resolver.nameservers) {
            Some(servers) if !servers.is_empty() => Resolution::Nameservers(servers.clone()),
            _ => Resolution::System,
        }
    };
    let authserv_id = args.authserv_id.clone().unwrap_or_else(host_name);
    let mut config = VerifierConfig::new(authserv_id, resolution);
    let configured_timeout = installation
        .as_ref()
        .and_then(|c| u64::try_from(c.resolver.timeout.seconds()).ok())
        .filter(|seconds| *seconds > 0);
    if let Some(seconds) = args.timeout.or(configured_timeout) {
        config.timeout = Duration::from_secs(seconds.max(1));
    }
    config
        .trusted_arc_sealers
        .clone_from(&args.trusted_arc_sealers);
    if let Some(path) = &args.public_suffix_list {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        config.public_suffixes = Arc::new(PublicSuffixList::parse(&text));
    }
    Ok(config)
}

/// The verifier `signet serve` lends the HTTP API (`POST /api/v1/verify`): `[resolver]`'s
/// servers and timeout, this machine's name as the authserv-id.
pub async fn for_server(config: &Config) -> Result<Verifier> {
    let resolution = if config.resolver.nameservers.is_empty() {
        Resolution::System
    } else {
        Resolution::Nameservers(config.resolver.nameservers.clone())
    };
    let mut settings = VerifierConfig::new(host_name(), resolution);
    if let Some(seconds) = u64::try_from(config.resolver.timeout.seconds())
        .ok()
        .filter(|seconds| *seconds > 0)
    {
        settings.timeout = Duration::from_secs(seconds.max(1));
    }
    Verifier::new(settings)
        .await
        .context("cannot build the verifier for the HTTP API")
}

pub fn read_message(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("cannot read standard input")?;
        Ok(raw)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
