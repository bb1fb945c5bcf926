//! `signet`: the one binary. Parses the command line, loads the installation, calls the
//! use-cases in `signet-app`, and prints what they return.

mod analyze_cmd;
mod config;
mod gateway;
mod output;
mod permissions;
mod resolver;
mod serve;
mod sign_cmd;
mod tls;
mod verify_cmd;
mod zone;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use signet_app::{
    AppError, DkimView, NewConnector, NewOptions, Service, SetOptions, Settings, SystemClock, view,
};
use signet_keys::{
    Algorithm, Canonicalization, DomainName, RsaBits, TenantName, TokenName, TokenScope,
};
use signet_store::Store;

use crate::config::Config;
use crate::resolver::HickoryDns;

/// mimalloc instead of glibc's allocator: the relay allocates and frees a few buffers per
/// message on every thread, and glibc's malloc took 8 % of its time (BENCHMARKS.md, relay).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "signet",
    version,
    about = "Self-hosted DKIM signing: keys, key zone, rotation"
)]
struct Cli {
    /// The installation's directory (signet.toml, database, master key).
    #[arg(
        long,
        global = true,
        env = "SIGNET_DATA_DIR",
        default_value = "./signet-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum Command {
    /// Create a new installation: data directory, signet.toml, database, master key.
    Init(InitArgs),
    /// Tenants (customer organisations).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Accepted domains of tenants.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// DKIM signing configs: new, get, set, rotate, remove, import, export-public.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Everything to publish for a domain: the customer's CNAMEs and signet's TXT records.
    Records {
        domain: DomainName,
        #[arg(long, value_enum, default_value_t = RecordsFormat::Table)]
        format: RecordsFormat,
    },
    /// How a tenant's servers reach the relay: client networks, or a login for submission.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// The relay's queue: messages accepted and not yet delivered.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// HTTP API tokens: `add NAME --admin|--tenant TENANT` prints a new token once.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log of every change.
    Audit {
        #[arg(long)]
        domain: Option<DomainName>,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Run one scheduler pass now: CNAME checks, switch-overs, retirements, automatic rotation.
    Tick,
    /// Verify a message: DKIM, SPF, DMARC, ARC and the Authentication-Results header.
    /// Exit status 0 pass, 1 fail, 75 temporary error.
    Verify(verify_cmd::VerifyArgs),
    /// Explain a message's authentication headers and relay hops (no DNS).
    Analyze(analyze_cmd::AnalyzeArgs),
    /// Run the service: key-zone DNS, relay, submission, delivery and the scheduler, until
    /// SIGTERM or Ctrl-C.
    ///
    /// The key zone's DNS server answers for the key zone over UDP and TCP ([dns] listen). The
    /// relay ([smtp] relay_listen) signs and queues mail from the tenants' connector networks;
    /// the submission listener ([smtp] submission_listen) takes mail after STARTTLS and AUTH with
    /// a connector login. Delivery sends queued mail to [smtp] smart_host or the recipients' MX,
    /// retrying until [smtp] queue_lifetime. The scheduler checks customers' CNAMEs, switches
    /// and retires keys, and starts automatic rotations.
    ///
    /// Without an installation in --data-dir, one is created first (key zone dkim.example.net).
    Serve(ServeArgs),
    /// The key zone.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Sign a message as the gateway would and print it with its DKIM-Signature.
    Sign {
        /// The message file; `-` reads standard input.
        #[arg(default_value = "-")]
        message: PathBuf,
        /// An envelope recipient (repeatable); mail only to the tenant's own domains is not signed.
        #[arg(long = "rcpt", value_name = "ADDRESS")]
        recipients: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[allow(clippy::struct_field_names)] // named after the config keys (docs/reference.md): --dns-listen, …
struct ServeArgs {
    /// Where the key zone's DNS server listens (UDP and TCP); overrides [dns] listen.
    #[arg(long, value_name = "ADDR:PORT")]
    dns_listen: Option<std::net::SocketAddr>,
    /// Where the signing relay listens; overrides [smtp] relay_listen.
    #[arg(long, value_name = "ADDR:PORT")]
    relay_listen: Option<std::net::SocketAddr>,
    /// Where the submission listener (STARTTLS + AUTH) listens; overrides [smtp] submission_listen.
    #[arg(long, value_name = "ADDR:PORT")]
    submission_listen: Option<std::net::SocketAddr>,
    /// Where the HTTP API listens, or `off`; overrides [http] listen.
    #[arg(long, value_name = "ADDR:PORT|off", value_parser = parse_http_listen)]
    http_listen: Option<HttpListen>,
}

/// `--http-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct HttpListen(Option<std::net::SocketAddr>);

fn parse_http_listen(text: &str) -> Result<HttpListen, String> {
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(HttpListen(None));
    }
    text.parse()
        .map(|addr| HttpListen(Some(addr)))
        .map_err(|_| format!("'{text}' is not an address like 127.0.0.1:8080, nor off"))
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it. Only its SHA-256 digest is stored: it cannot be shown again.
    Add {
        name: TokenName,
        /// The token sees and changes everything.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        admin: bool,
        /// The token sees and changes this tenant's domains only.
        #[arg(long)]
        tenant: Option<TenantName>,
    },
    /// Names, scopes and dates of the tokens (never the tokens).
    List {
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Remove a token: requests carrying it are refused from then on.
    Remove { name: TokenName },
}

#[derive(Debug, Subcommand)]
enum ZoneCommand {
    /// Print the key zone in master-file format, for serving it from your own DNS.
    Export,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The DNS zone signet serves, e.g. dkim.example.net.
    #[arg(long)]
    key_zone: DomainName,
    /// An upstream DNS server for CNAME checks (repeatable); default: the system resolver.
    #[arg(long = "resolver", value_name = "ADDR:PORT")]
    resolvers: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant with its initial domain <name>.<key zone> (signing) and routing domain.
    Add { name: TenantName },
    List {
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Remove a tenant that has no accepted domains left.
    Remove { name: TenantName },
}

#[derive(Debug, Subcommand)]
enum DomainCommand {
    /// Accept a domain for a tenant; creates its signing config (disabled) with a key.
    Add {
        tenant: TenantName,
        domain: DomainName,
    },
    List {
        #[arg(long)]
        tenant: Option<TenantName>,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Remove an accepted domain with its signing config and keys.
    Remove { domain: DomainName },
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    List {
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Print a queued message's envelope and headers.
    Show { id: String },
    /// Make every queued message due now (a running `signet serve` tries within a second).
    Flush,
    /// Remove a message from the queue without delivering it.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Add a connector: `--from CIDR…` (relay from those networks) or `--login USER
    /// --password-stdin` (submission with SMTP AUTH; the password is stored as an argon2id hash).
    Add {
        tenant: TenantName,
        name: String,
        #[arg(long = "from", value_name = "CIDR", num_args = 1.., conflicts_with = "login", required_unless_present = "login")]
        networks: Vec<signet_keys::IpNetwork>,
        #[arg(long, value_name = "USER", requires = "password_stdin")]
        login: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    List {
        #[arg(long)]
        tenant: Option<TenantName>,
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    Remove {
        tenant: TenantName,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum DkimCommand {
    /// Create a signing config with a new key in selector1 (New-DkimSigningConfig).
    New {
        domain: DomainName,
        #[arg(long)]
        key_size: Option<RsaBits>,
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: Algorithm,
        #[arg(long, action = clap::ArgAction::Set, default_value_t = false)]
        enabled: bool,
        #[arg(long, default_value = "relaxed")]
        header_canonicalization: Canonicalization,
        #[arg(long, default_value = "relaxed")]
        body_canonicalization: Canonicalization,
    },
    /// Show signing configs (Get-DkimSigningConfig).
    Get {
        domain: Option<DomainName>,
        #[arg(long, value_enum, default_value_t = GetFormat::List)]
        format: GetFormat,
    },
    /// Change settings; enabling checks the CNAMEs first (Set-DkimSigningConfig).
    Set {
        domain: DomainName,
        #[arg(long, action = clap::ArgAction::Set)]
        enabled: Option<bool>,
        #[arg(long)]
        header_canonicalization: Option<Canonicalization>,
        #[arg(long)]
        body_canonicalization: Option<Canonicalization>,
        /// Write `x=` (the signature expires 7 days after `t=`) in this domain's signatures.
        #[arg(long, action = clap::ArgAction::Set)]
        include_key_expiration: Option<bool>,
        /// Rotate this domain's key automatically every SPAN (e.g. 90d, minimum 5d), or `off`.
        #[arg(long, value_name = "SPAN|off", value_parser = parse_interval)]
        rotation_interval: Option<Interval>,
    },
    /// Put a new key in the other selector; it signs after the rotation delay (Rotate-DkimSigningConfig).
    Rotate {
        domain: DomainName,
        #[arg(long)]
        key_size: Option<RsaBits>,
    },
    /// Delete a signing config and withdraw its records.
    Remove { domain: DomainName },
    /// Bring in an existing PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519).
    Import {
        domain: DomainName,
        /// The key file; `-` reads standard input.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the public record (v=DKIM1; k=…; p=…) of the key signing now.
    ExportPublic { domain: DomainName },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GetFormat {
    List,
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TableFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RecordsFormat {
    Table,
    Zone,
    Json,
}

/// `--rotation-interval`: a span, or `off`.
#[derive(Debug, Clone, Copy)]
struct Interval(Option<signet_keys::Span>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Interval(None));
    }
    text.parse()
        .map(|span| Interval(Some(span)))
        .map_err(|e: signet_keys::Error| e.to_string())
}

/// The key zone `signet serve` uses when it has to create an installation itself.
const DEMO_KEY_ZONE: &str = "dkim.example.net";

/// Exit status for a temporary failure (sysexits' EX_TEMPFAIL): try again later.
const EXIT_TEMPORARY: u8 = 75;
/// Exit status for a command line that cannot be run as given (clap's, for every usage error).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's whole message: the arguments missing, the values allowed, "a similar
            // subcommand exists", the usage. `--help` and `--version` go to stdout with 0; a
            // mistake, and a bare command group (its help), go to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    let level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// 75 for what may work later (DNS), 2 for a name given on the command line that cannot be used
/// (as clap answers for the names it parses itself), 1 for every other refusal.
fn exit_code(error: &anyhow::Error) -> ExitCode {
    match error.downcast_ref::<AppError>() {
        Some(e) if e.is_temporary() => ExitCode::from(EXIT_TEMPORARY),
        Some(AppError::Keys(
            signet_keys::Error::DomainName { .. } | signet_keys::Error::TenantName { .. },
        )) => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::FAILURE,
    }
}

async fn run(cli: Cli) -> Result<()> {
    let data_dir = cli.data_dir;
    match cli.command {
        Command::Init(args) => init(&data_dir, &args).await,
        Command::Queue(command) => {
            permissions::check(&Config::load(&data_dir)?)?;
            queue(&data_dir, command)
        }
        Command::Serve(args) => {
            if !data_dir.join(config::CONFIG_FILE).exists() {
                let key_zone: DomainName = DEMO_KEY_ZONE.parse()?;
                init(
                    &data_dir,
                    &InitArgs {
                        key_zone,
                        resolvers: Vec::new(),
                    },
                )
                .await?;
                tracing::warn!(
                    "initialised {} with the placeholder key zone {DEMO_KEY_ZONE}; for real use run `signet init --key-zone YOUR.ZONE` in an empty directory",
                    data_dir.display()
                );
            }
            let (mut config, service) = open(&data_dir).await?;
            if let Some(listen) = args.dns_listen {
                config.dns.listen = listen;
            }
            if let Some(listen) = args.relay_listen {
                config.smtp.relay_listen = listen;
            }
            if let Some(listen) = args.submission_listen {
                config.smtp.submission_listen = listen;
            }
            if let Some(HttpListen(listen)) = args.http_listen {
                config.http.listen = listen;
            }
            serve::serve(config, service).await
        }
        Command::Verify(args) => verify_cmd::run(&data_dir, args).await,
        Command::Analyze(args) => analyze_cmd::run(&args),
        command => {
            let (config, service) = open(&data_dir).await?;
            let result = dispatch(command, &config, &service).await;
            service.store().close().await;
            result
        }
    }
}

pub(crate) type Signet = Service<HickoryDns, SystemClock>;

async fn open(data_dir: &Path) -> Result<(Config, Signet)> {
    let config = Config::load(data_dir)?;
    let master = config.master_key()?;
    permissions::check(&config)?;
    let store = Store::open(&config.database_path()).await?;
    let dns = HickoryDns::new(&config.resolver)?;
    let settings = Settings {
        zone: config.key_zone.clone(),
        rotation: config.rotation,
        check_interval: config.check_interval,
        rotation_interval: config.rotation_interval,
    };
    let service = Service::new(store, master, dns, SystemClock, settings, actor());
    if let Err(e) = service.check_key_zone().await {
        service.store().close().await;
        let file = data_dir.join(config::CONFIG_FILE);
        return Err(e).with_context(|| format!("{}", file.display()));
    }
    Ok((config, service))
}

/// Who is acting, for the audit log: the login name of the process's user, as `id -un` gives
/// it. `$USER` is not asked: it may be unset (cron, systemd, `env -i`) or say anything.
fn actor() -> String {
    format!("cli:{}", login_name())
}

/// The name `/etc/passwd` gives the process's uid (the owner of `/proc/self`), or `uid N` when
/// it has none (a container's arbitrary uid).
fn login_name() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_of(&passwd, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The first name in a passwd(5) file with `uid`.
fn user_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid && !name.is_empty()).then(|| name.to_string())
    })
}

async fn init(data_dir: &Path, args: &InitArgs) -> Result<()> {
    let config = config::init(data_dir, &args.key_zone, &args.resolvers)?;
    if let Err(e) = create_store(&config).await {
        // Leave nothing half-made: the directory held no installation before.
        for file in [config::CONFIG_FILE, config::MASTER_KEY_FILE] {
            let _ = std::fs::remove_file(data_dir.join(file));
        }
        return Err(e.into());
    }
    println!(
        "Initialised {} for key zone {}.",
        data_dir.display(),
        args.key_zone
    );
    println!(
        "  config:     {}",
        data_dir.join(config::CONFIG_FILE).display()
    );
    println!("  database:   {}", config.database_path().display());
    println!(
        "  master key: {} (mode 0600; back it up apart from the database)",
        config.master_key_file.display()
    );
    println!("Next: signet tenant add NAME");
    Ok(())
}

/// The database, with the key zone its names will be made under.
async fn create_store(config: &Config) -> Result<(), signet_store::StoreError> {
    let path = config.database_path();
    let store = Store::create(&path).await?;
    let recorded = async {
        let mut tx = store.begin_write().await?;
        tx.set_key_zone(config.key_zone.name()).await?;
        tx.commit().await
    }
    .await;
    store.close().await;
    if recorded.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    recorded
}

async fn dispatch(command: Command, config: &Config, service: &Signet) -> Result<()> {
    match command {
        Command::Init(_) | Command::Verify(_) | Command::Analyze(_) | Command::Queue(_) => {
            unreachable!("handled before opening the installation")
        }
        Command::Tenant(command) => tenant(command, service).await,
        Command::Domain(command) => domain(command, service).await,
        Command::Dkim(command) => dkim(command, service).await,
        Command::Records { domain, format } => {
            let records = service.records(&domain).await?;
            let ttl = config.dns.ttl;
            print!(
                "{}",
                match format {
                    RecordsFormat::Table => output::records_table(&records, &config.key_zone),
                    RecordsFormat::Zone => output::records_zone(&records, ttl),
                    RecordsFormat::Json => output::records_json(&records, ttl),
                }
            );
            Ok(())
        }
        Command::Audit { domain, format } => audit(service, domain.as_ref(), format).await,
        Command::Token(command) => token(command, service).await,
        Command::Connector(command) => connector(command, service).await,
        Command::Zone(ZoneCommand::Export) => {
            print!("{}", zone::build(config, service).await?.to_master_file());
            Ok(())
        }
        Command::Serve(_) => unreachable!("handled before dispatch"),
        Command::Sign {
            message,
            recipients,
        } => sign_cmd::run(service, &message, &recipients).await,
        Command::Tick => {
            let report = service.tick().await?;
            for event in &report.events {
                println!("{event}");
            }
            if report.events.is_empty() {
                println!("nothing to do");
            }
            Ok(())
        }
    }
}

async fn tenant(command: TenantCommand, service: &Signet) -> Result<()> {
    match command {
        TenantCommand::Add { name } => {
            let initial = service.add_tenant(&name).await?;
            let routing = service.settings().zone.routing_domain(&name)?;
            println!("Tenant '{name}' created.");
            println!(
                "  initial domain: {} (signing, key in selector1)",
                initial.domain
            );
            println!("  routing domain: {routing} (routing only, never signs)");
        }
        TenantCommand::List { format } => {
            let zone = &service.settings().zone;
            let rows: Vec<_> = service
                .tenants()
                .await?
                .iter()
                .map(|t| view::tenant_properties(t, zone))
                .collect();
            print_properties(&["Name", "InitialDomain", "WhenCreated"], &rows, format);
        }
        TenantCommand::Remove { name } => {
            service.remove_tenant(&name).await?;
            println!("Tenant '{name}' removed.");
        }
    }
    Ok(())
}

async fn domain(command: DomainCommand, service: &Signet) -> Result<()> {
    match command {
        DomainCommand::Add { tenant, domain } => {
            service.add_domain(&tenant, &domain).await?;
            let zone = &service.settings().zone;
            let initial = zone.initial_domain(&tenant)?;
            println!(
                "{domain} accepted for tenant '{tenant}'. DKIM: key in selector1, not enabled."
            );
            println!("Until enabled, mail from {domain} is signed with d={initial}.");
            println!(
                "Publish the CNAMEs shown by `signet records {domain}`, then run `signet dkim set {domain} --enabled true`."
            );
        }
        DomainCommand::List { tenant, format } => {
            let rows: Vec<_> = service
                .domains(tenant.as_ref())
                .await?
                .iter()
                .map(view::domain_properties)
                .collect();
            print_properties(&["Name", "Tenant", "Kind", "WhenCreated"], &rows, format);
        }
        DomainCommand::Remove { domain } => {
            service.remove_domain(&domain).await?;
            println!("{domain} removed, with its signing config; its key records are withdrawn.");
        }
    }
    Ok(())
}

async fn dkim(command: DkimCommand, service: &Signet) -> Result<()> {
    let zone = service.settings().zone.clone();
    let show = |config| {
        output::list(&[output::config_properties(
            &DkimView::Configured(config),
            &zone,
        )])
    };
    match command {
        DkimCommand::New {
            domain,
            key_size,
            algorithm,
            enabled,
            header_canonicalization,
            body_canonicalization,
        } => {
            let options = NewOptions {
                algorithm,
                key_size,
                enabled,
                header_canonicalization,
                body_canonicalization,
            };
            print!("{}", show(service.new_config(&domain, options).await?));
        }
        DkimCommand::Get { domain, format } => {
            let views = service.configs(domain.as_ref()).await?;
            let records: Vec<_> = views
                .iter()
                .map(|v| output::config_properties(v, &zone))
                .collect();
            print!(
                "{}",
                match format {
                    GetFormat::List => output::list(&records),
                    GetFormat::Json => output::json(&records, domain.is_some()),
                    GetFormat::Table => output::table(
                        &records,
                        &[
                            "Domain",
                            "Enabled",
                            "Status",
                            "SigningSelector",
                            "Selector1KeySize",
                            "Selector2KeySize",
                            "RotateOnDate",
                            "LastChecked"
                        ]
                    ),
                }
            );
        }
        DkimCommand::Set {
            domain,
            enabled,
            header_canonicalization,
            body_canonicalization,
            include_key_expiration,
            rotation_interval,
        } => {
            let options = SetOptions {
                enabled,
                header_canonicalization,
                body_canonicalization,
                include_key_expiration,
                rotation_interval: rotation_interval.map(|Interval(span)| span),
            };
            print!("{}", show(service.set(&domain, options).await?));
        }
        DkimCommand::Rotate { domain, key_size } => {
            print!("{}", show(service.rotate(&domain, key_size).await?));
        }
        DkimCommand::Remove { domain } => {
            service.remove_config(&domain).await?;
            println!("DKIM signing config of {domain} removed; its key records are withdrawn.");
        }
        DkimCommand::Import { domain, key } => {
            let pem = read_input(&key)?;
            print!("{}", show(service.import_key(&domain, &pem).await?));
        }
        DkimCommand::ExportPublic { domain } => {
            println!("{}", service.export_public(&domain).await?);
        }
    }
    Ok(())
}

/// A time as RFC 3339 (UTC, seconds).
fn rfc3339(t: std::time::SystemTime) -> String {
    let seconds = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    signet_keys::Timestamp::from_unix(seconds).rfc3339()
}

/// The queue as `signet queue list` and `GET /api/v1/queue` show it; an entry removed while
/// listing is left out.
pub(crate) fn queue_entries(
    spool: &signet_smtp::spool::Spool,
) -> Result<Vec<signet_api::QueueEntry>, signet_smtp::Error> {
    let mut entries = Vec::new();
    for id in spool.list()? {
        let Ok(e) = spool.envelope(id) else { continue };
        entries.push(signet_api::QueueEntry {
            id: id.to_string(),
            tenant: e.tenant.clone(),
            from: e
                .sender
                .as_ref()
                .map_or_else(|| "<>".to_string(), ToString::to_string),
            to: e
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            attempts: e.attempts,
            next_attempt: rfc3339(e.next_attempt),
        });
    }
    Ok(entries)
}

fn queue(data_dir: &Path, command: QueueCommand) -> Result<()> {
    use signet_smtp::spool::{QueueId, Spool};
    let spool = Spool::open_alongside(data_dir.join("spool")).context("cannot open the queue")?;
    let parse = |id: &str| {
        id.parse::<QueueId>()
            .map_err(|_| anyhow::anyhow!("'{id}' is not a queue id"))
    };
    let when = rfc3339;
    match command {
        QueueCommand::List { format } => {
            let entries = queue_entries(&spool)?;
            match format {
                TableFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
                TableFormat::Table => {
                    let rows: Vec<Vec<String>> = entries
                        .into_iter()
                        .map(|e| {
                            vec![
                                e.id,
                                e.tenant,
                                e.from,
                                e.to,
                                e.attempts.to_string(),
                                e.next_attempt,
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        output::plain_table(
                            &["Id", "Tenant", "From", "To", "Attempts", "NextAttempt"],
                            &rows
                        )
                    );
                }
            }
        }
        QueueCommand::Show { id } => {
            let (e, message) = spool.load(parse(&id)?)?;
            println!(
                "Id          : {id}\nTenant      : {}\nFrom        : <{}>\nTo          : {}\nReceived    : {}\nAttempts    : {}\nNextAttempt : {}\n",
                e.tenant,
                e.sender
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                e.recipients
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                when(e.received_at),
                e.attempts,
                when(e.next_attempt)
            );
            let end = message
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(message.len(), |p| p + 2);
            print!("{}", String::from_utf8_lossy(&message[..end]));
        }
        QueueCommand::Flush => {
            let now = std::time::SystemTime::now();
            let mut count = 0;
            for id in spool.list()? {
                let Ok(mut e) = spool.envelope(id) else {
                    continue;
                };
                e.next_attempt = now;
                spool.update(id, &e)?;
                count += 1;
            }
            println!("{count} message(s) due now.");
        }
        QueueCommand::Delete { id } => {
            spool.remove(parse(&id)?)?;
            println!("{id} deleted from the queue; it will not be delivered.");
        }
    }
    Ok(())
}

async fn connector(command: ConnectorCommand, service: &Signet) -> Result<()> {
    match command {
        ConnectorCommand::Add {
            tenant,
            name,
            networks,
            login,
            password_stdin,
        } => {
            let new = match login {
                Some(username) => {
                    anyhow::ensure!(password_stdin, "--login needs --password-stdin");
                    let mut line = zeroize::Zeroizing::new(String::new());
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("cannot read the password from standard input")?;
                    let password =
                        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
                    NewConnector::Login { username, password }
                }
                None => NewConnector::Networks(networks),
            };
            let added = service.add_connector(&tenant, &name, new).await?;
            println!(
                "Connector '{name}' added to tenant '{tenant}': {}",
                signet_app::describe_connector(&added)
            );
        }
        ConnectorCommand::List { tenant, format } => {
            let rows: Vec<_> = service
                .connectors(tenant.as_ref())
                .await?
                .iter()
                .map(view::connector_properties)
                .collect();
            print_properties(
                &["Tenant", "Name", "Kind", "Clients", "WhenCreated"],
                &rows,
                format,
            );
        }
        ConnectorCommand::Remove { tenant, name } => {
            service.remove_connector(&tenant, &name).await?;
            println!("Connector '{name}' removed from tenant '{tenant}'.");
        }
    }
    Ok(())
}

async fn token(command: TokenCommand, service: &Signet) -> Result<()> {
    match command {
        TokenCommand::Add {
            name,
            admin: _,
            tenant,
        } => {
            let scope = tenant.map_or(TokenScope::Admin, TokenScope::Tenant);
            let (token, secret) = service.add_token(&name, scope).await?;
            // The token alone on standard output, for `TOKEN=$(signet token add …)`.
            eprintln!(
                "Token '{name}' ({}) created. It is shown only this once: keep it secret.",
                token.scope
            );
            println!("{}", secret.expose());
        }
        TokenCommand::List { format } => {
            let rows: Vec<Vec<String>> = service
                .tokens()
                .await?
                .iter()
                .map(|t| vec![t.name.to_string(), t.scope.to_string(), t.created.rfc3339()])
                .collect();
            print_rows(
                &["Name", "Scope", "WhenCreated"],
                &["name", "scope", "when_created"],
                &rows,
                format,
            );
        }
        TokenCommand::Remove { name } => {
            service.remove_token(&name).await?;
            println!("Token '{name}' removed.");
        }
    }
    Ok(())
}

async fn audit(service: &Signet, domain: Option<&DomainName>, format: TableFormat) -> Result<()> {
    let entries = service.audit(domain).await?;
    if let TableFormat::Json = format {
        let objects: Vec<serde_json::Value> =
            entries.iter().map(signet_app::view::audit_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&objects).unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .into_iter()
        .map(|e| {
            vec![
                e.at.rfc3339(),
                e.actor,
                e.action,
                e.domain.unwrap_or_default(),
                e.detail,
            ]
        })
        .collect();
    print_rows(
        &["When", "Who", "What", "Domain", "Detail"],
        &["when", "who", "what", "domain", "detail"],
        &rows,
        format,
    );
    Ok(())
}

/// Rows of `app::view` properties: a table under their PascalCase names, or JSON objects with
/// their snake_case names, as the HTTP API answers.
/// `header` is the PascalCase names, shown even when there are no rows.
fn print_properties(header: &[&str], rows: &[Vec<view::Property>], format: TableFormat) {
    match format {
        TableFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|p| match &p.value {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            print!("{}", output::plain_table(header, &cells));
        }
        TableFormat::Json => {
            let objects: Vec<serde_json::Value> =
                rows.iter().map(|row| view::config_json(row)).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&objects).unwrap_or_default()
            );
        }
    }
}

fn print_rows(header: &[&str], keys: &[&str], rows: &[Vec<String>], format: TableFormat) {
    match format {
        TableFormat::Table => print!("{}", output::plain_table(header, rows)),
        TableFormat::Json => {
            let objects: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    keys.iter()
                        .zip(row)
                        .map(|(k, v)| {
                            let value = serde_json::from_str::<serde_json::Value>(v)
                                .ok()
                                .filter(serde_json::Value::is_object)
                                .unwrap_or_else(|| serde_json::Value::String(v.clone()));
                            ((*k).to_string(), value)
                        })
                        .collect::<serde_json::Map<_, _>>()
                        .into()
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&objects).unwrap_or_default()
            );
        }
    }
}

pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
