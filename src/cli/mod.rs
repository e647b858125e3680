//! Command-line parsing and dispatch; the one place that turns errors into exit codes.

/// `print!` to standard output that returns an error where `print!` would panic: when the
/// reader has gone (`idpsync query users | head`). [`main`] ends quietly on that error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `println!` as [`out!`] is `print!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod audit;
mod dev;
mod log;
mod log_copy;
mod query;
mod serve;
mod status;
mod sync;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use idpsync::config::{Config, DEFAULT_DATA_DIR, LogFormat};
use idpsync::engine::Engine;
use idpsync::storage::LogStore;
use idpsync::storage_location::StorageLocation;

/// openZro IdP-Sync: identity events from SCIM and IdP drivers, folded into users, groups and
/// network access.
#[derive(Parser, Debug)]
#[command(name = "idpsync", version = idpsync::VERSION, propagate_version = true)]
struct Cli {
    /// The data directory (log, snapshots) [default: ./idpsync-data]
    #[arg(long, global = true, env = "IDPSYNC_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file
    #[arg(long, global = true, env = "IDPSYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service: HTTP on loopback, the engine, snapshots on shutdown
    Serve(serve::ServeArgs),
    /// Work with the log: verify it, copy it to another store, export and check signed
    /// checkpoints
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Offboarding audits: one user's chain, or every leaver of a period
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Ask about users, groups, memberships and access, now or in the past
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// Create, list and revoke API tokens (SCIM and admin bearer tokens)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Work with users: erase a user's personal fields
    #[command(subcommand)]
    User(user::UserCommand),
    /// Developer tools
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Run one sync of an IdP integration and print its changes
    Sync(sync::SyncArgs),
    /// What waits in each tenant: pending absences, unacknowledged revocations
    Status(status::StatusArgs),
}

/// What every command needs: the configuration and where the data is.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) data_dir: PathBuf,
    /// The log store, and which setting chose it (for errors that name it).
    pub(crate) storage: StorageLocation,
    pub(crate) storage_set_by: &'static str,
}

impl Context {
    /// The configured log store, opened.
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn LogStore>> {
        idpsync::open_store_at(&self.storage, &self.data_dir)
            .await
            .with_context(|| self.opening())
    }

    /// The engine on the configured log store.
    pub(crate) async fn open_engine(&self) -> anyhow::Result<Engine> {
        idpsync::open_at(&self.storage, &self.data_dir, self.config.tenant_settings())
            .await
            .with_context(|| self.opening())
    }

    fn opening(&self) -> String {
        format!(
            "opening the log store {} (set by {})",
            self.storage, self.storage_set_by
        )
    }
}

/// The log store to open: `IDPSYNC_STORAGE`, else the file's `storage`, else redb in the data
/// directory; and which of them said so.
fn storage(config: &Config, data_dir: &std::path::Path) -> anyhow::Result<(StorageLocation, &'static str)> {
    match std::env::var("IDPSYNC_STORAGE") {
        Ok(text) => {
            let location = text.parse().map_err(|e| anyhow::anyhow!("IDPSYNC_STORAGE: {e}"))?;
            Ok((location, "IDPSYNC_STORAGE"))
        }
        Err(_) => Ok(match &config.storage {
            Some(location) => (location.clone(), "`storage` in the configuration file"),
            None => (
                StorageLocation::Redb(data_dir.to_owned()),
                "the default (no `storage` setting: redb in the data directory)",
            ),
        }),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IDPSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn log_format(config: &Config) -> anyhow::Result<LogFormat> {
    match std::env::var("IDPSYNC_LOG_FORMAT") {
        Ok(value) => match value.as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => anyhow::bail!("IDPSYNC_LOG_FORMAT must be `text` or `json`, not {other:?}"),
        },
        Err(_) => Ok(config.log_format.unwrap_or(LogFormat::Text)),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    init_logging(log_format(&config)?);
    let data_dir = cli
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let (storage, storage_set_by) = storage(&config, &data_dir)?;
    let context = Context {
        config,
        data_dir,
        storage,
        storage_set_by,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(&context, args).await,
            Command::Log(command) => log::run(&context, command).await,
            Command::Audit(command) => audit::run(&context, command).await,
            Command::Query(command) => query::run(&context, command).await,
            Command::Token(command) => token::run(&context, command),
            Command::User(command) => user::run(&context, command).await,
            Command::Dev(command) => dev::run(&context, command).await,
            Command::Sync(args) => sync::run(&context, args).await,
            Command::Status(args) => status::run(&context, args).await,
        }
    })
}

/// Parses the command line, runs the command, and maps any error to exit code 1 with the
/// error's chain on standard error.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped reading (`| head`): not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
