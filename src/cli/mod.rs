//! Command-line parsing and dispatch; the one place that turns errors into exit codes.

/// `print!` to standard output (or to the CLI a server runs the command for: see
/// [`output`]) that returns an error where `print!` would panic: when the reader has gone
/// (`idpsync query users | head`). [`main`] ends quietly on that error.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))?
    };
}

/// `println!` as [`out!`] is `print!`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `eprintln!` for a command's warnings, which go where its output goes.
macro_rules! warnln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_warning(format_args!($($arg)*))
    };
}

mod audit;
mod backup;
mod control;
mod dev;
mod log;
mod log_copy;
mod output;
mod progress;
mod query;
mod role;
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

use self::control::ReadCommand;

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
    /// The control socket of a running `idpsync serve` that read commands (query, audit, log
    /// verify, status) go through [default: <data-dir>/control.sock, when a server runs there]
    #[arg(long, global = true, env = "IDPSYNC_SERVER", value_name = "SOCKET")]
    server: Option<PathBuf>,
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
    /// Management roles from groups: role bindings and the default role
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Developer tools
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Run one sync of an IdP integration and print its changes
    Sync(sync::SyncArgs),
    /// Each tenant's log (head, snapshots, last checkpoint), integrations (last and next run,
    /// last error, held syncs), pending absences and unacknowledged revocations
    Status(status::StatusArgs),
    /// Back the log and the data directory's files up into a new directory, while the service
    /// runs; the backup is verified by the chain, and is a data directory of its own
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory (or store) that holds no log, with the service
    /// stopped; verified by the chain
    Restore(backup::RestoreArgs),
}

/// What every command needs: the configuration and where the data is.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) data_dir: PathBuf,
    /// The log store, and which setting chose it (for errors that name it).
    pub(crate) storage: StorageLocation,
    pub(crate) storage_set_by: &'static str,
    /// The running service, when `serve` runs a read command for a CLI
    /// ([`control`]): the command works on the service's engine instead of opening the store.
    pub(crate) running: Option<Running>,
}

/// What a running `serve` lends the read commands it runs.
#[derive(Clone)]
pub(crate) struct Running {
    pub(crate) engine: Arc<Engine>,
    pub(crate) integrations: idpsync_drivers::scheduler::SchedulerHandle,
}

/// An engine a command works on: its own, opened for it, or the running service's.
pub(crate) enum OpenEngine {
    Own(Engine),
    Service(Arc<Engine>),
}

impl std::ops::Deref for OpenEngine {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        match self {
            OpenEngine::Own(engine) => engine,
            OpenEngine::Service(engine) => engine,
        }
    }
}

impl OpenEngine {
    /// Shuts an engine of the command's own down (writing snapshots); leaves the service's
    /// running.
    pub(crate) async fn close(self) {
        if let OpenEngine::Own(engine) = self {
            engine.shutdown().await;
        }
    }
}

impl Context {
    /// The configured log store, opened (the service's, when the service runs the command).
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn LogStore>> {
        if let Some(running) = &self.running {
            return Ok(Arc::clone(running.engine.store()));
        }
        idpsync::open_store_at(&self.storage, &self.data_dir)
            .await
            .with_context(|| self.opening())
    }

    /// The engine on the configured log store (the service's, when the service runs the
    /// command).
    pub(crate) async fn open_engine(&self) -> anyhow::Result<OpenEngine> {
        if let Some(running) = &self.running {
            return Ok(OpenEngine::Service(Arc::clone(&running.engine)));
        }
        let spinner = progress::spinner(format!(
            "opening the log {} (snapshots, then replaying the records after them)",
            self.storage
        ));
        let engine = self.open_own_engine().await;
        spinner.finish_and_clear();
        Ok(OpenEngine::Own(engine?))
    }

    /// A new engine on the configured log store.
    pub(crate) async fn open_own_engine(&self) -> anyhow::Result<Engine> {
        idpsync::open_at(&self.storage, &self.data_dir, self.config.tenant_settings())
            .await
            .with_context(|| self.opening())
    }

    /// For commands that only read: refuses a redb data directory that holds no log, instead
    /// of creating one (a mistyped `--data-dir` would otherwise read as an empty log).
    pub(crate) fn require_existing_log(&self) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        if let StorageLocation::Redb(dir) = &self.storage
            && !dir.join(idpsync::storage::redb_store::DATABASE_FILE).is_file()
        {
            anyhow::bail!(
                "{} holds no IdP-Sync log (no {}): check --data-dir, IDPSYNC_DATA_DIR or `data_dir` in the configuration \
                 (`idpsync serve` creates the log on its first start)",
                dir.display(),
                idpsync::storage::redb_store::DATABASE_FILE
            );
        }
        Ok(())
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
        running: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(&context, args).await,
            Command::Log(log::LogCommand::Verify(args)) => {
                control::read(&context, cli.server, ReadCommand::Verify(args)).await
            }
            Command::Log(command) => log::run(&context, command).await,
            Command::Audit(command) => control::read(&context, cli.server, ReadCommand::Audit(command)).await,
            Command::Query(command) => control::read(&context, cli.server, ReadCommand::Query(command)).await,
            Command::Status(args) => control::read(&context, cli.server, ReadCommand::Status(args)).await,
            Command::Backup(args) => control::read(&context, cli.server, ReadCommand::Backup(args)).await,
            Command::Restore(args) => backup::run_restore(&context, args).await,
            Command::Token(command) => token::run(&context, command).await,
            Command::User(command) => user::run(&context, command).await,
            Command::Role(command) => role::run(&context, command).await,
            Command::Dev(command) => dev::run(&context, command).await,
            Command::Sync(args) => sync::run(&context, args).await,
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
