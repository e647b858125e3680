//! The control socket: how read commands (`query`, `audit`, `log verify`, `status`) work
//! while `idpsync serve` holds the store.
//!
//! `serve` listens on `<data-dir>/control.sock`, a Unix socket only the service's user can
//! open (the data directory is 0700, the socket 0600): whoever may open it may read the
//! database file anyway, so it takes no token. A read command finds the socket in its data
//! directory (or is given one with `--server`), sends the command as one JSON line, and the
//! service runs the same code on its own engine, capturing what it writes ([`super::output`]),
//! and answers with one JSON document: the output, the warnings, and the error if it failed.
//! The output is the same as the command's on a stopped data directory, and the service's
//! fold answers instead of a second replay.
//!
//! With no server (no socket, or a stale one a crashed server left), the command opens the
//! store itself; on a redb data directory that holds no log, it says so instead of creating
//! one.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::audit::AuditCommand;
use super::backup::BackupArgs;
use super::log::VerifyArgs;
use super::query::QueryCommand;
use super::status::StatusArgs;
use super::{Context, output};

/// The socket's name in the data directory.
pub(crate) const SOCKET_FILE: &str = "control.sock";

/// The largest request line the service reads.
const REQUEST_MAX: u64 = 64 * 1024;

/// A command that only reads, which the service can run for a CLI.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ReadCommand {
    Query(QueryCommand),
    Audit(AuditCommand),
    Verify(VerifyArgs),
    Status(StatusArgs),
    Backup(BackupArgs),
}

impl ReadCommand {
    /// Runs the command on `context` (the service's, or a store of its own).
    async fn run(self, context: &Context) -> anyhow::Result<()> {
        match self {
            ReadCommand::Query(command) => super::query::run(context, command).await,
            ReadCommand::Audit(command) => super::audit::run(context, command).await,
            ReadCommand::Verify(args) => super::log::verify(context, args).await,
            ReadCommand::Status(args) => super::status::run(context, args).await,
            ReadCommand::Backup(args) => super::backup::run_backup(context, args).await,
        }
    }
}

/// What the service answers.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Answer {
    stdout: String,
    stderr: String,
    error: Option<String>,
}

/// Runs a read command: through the service serving this data directory when there is one,
/// here otherwise.
pub(crate) async fn read(context: &Context, server: Option<PathBuf>, command: ReadCommand) -> anyhow::Result<()> {
    let explicit = server.is_some();
    let socket = server.unwrap_or_else(|| context.data_dir.join(SOCKET_FILE));
    if explicit || socket.exists() {
        match connect(&socket).await {
            Ok(stream) => return forward(stream, command).await,
            Err(error) if explicit => {
                bail!("cannot reach idpsync serve at {}: {error}", socket.display())
            }
            // A socket a crashed server left: nobody serves, so the store is free.
            Err(_) => {}
        }
    }
    context.require_existing_log()?;
    command.run(context).await
}

/// Whether a service answers on the control socket of `data_dir`.
pub(crate) async fn service_answers(data_dir: &Path) -> bool {
    connect(&data_dir.join(SOCKET_FILE)).await.is_ok()
}

#[cfg(unix)]
async fn connect(socket: &Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(socket).await
}

/// Control sockets are Unix sockets: elsewhere, read commands open the store themselves.
#[cfg(not(unix))]
async fn connect(_socket: &Path) -> std::io::Result<tokio::io::DuplexStream> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "control sockets need a Unix system",
    ))
}

/// Sends `command` to the service and prints its answer as the command would have.
async fn forward(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    mut command: ReadCommand,
) -> anyhow::Result<()> {
    // Files are written and read here, by the caller, with the caller's paths.
    let output_file = match &mut command {
        ReadCommand::Audit(audit) => audit.take_output_file(),
        _ => None,
    };
    command = match command {
        ReadCommand::Verify(args) => ReadCommand::Verify(args.with_absolute_paths()?),
        ReadCommand::Backup(args) => ReadCommand::Backup(args.with_absolute_path()?),
        other => other,
    };
    let mut request = serde_json::to_vec(&command)?;
    request.push(b'\n');
    stream
        .write_all(&request)
        .await
        .context("sending the command to idpsync serve")?;
    stream.flush().await?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .context("reading the answer of idpsync serve")?;
    let answer: Answer = serde_json::from_slice(&reply).context("reading the answer of idpsync serve")?;
    eprint!("{}", answer.stderr);
    if let Some(error) = answer.error {
        return Err(anyhow!(error));
    }
    match output_file {
        Some(path) => std::fs::write(&path, answer.stdout).with_context(|| format!("writing {}", path.display())),
        None => {
            out!("{}", answer.stdout);
            Ok(())
        }
    }
}

/// The service's side: answers read commands on `<data-dir>/control.sock` until dropped,
/// then removes the socket.
pub(crate) struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    /// Listens in `context.data_dir`; `context.running` is the service the commands run on.
    /// A socket file left by a server that is gone is replaced; one a running server answers
    /// on is an error.
    #[cfg(unix)]
    pub(crate) async fn start(context: Context) -> anyhow::Result<Option<ControlSocket>> {
        use std::os::unix::fs::PermissionsExt as _;

        let path = context.data_dir.join(SOCKET_FILE);
        if path.exists() {
            if connect(&path).await.is_ok() {
                bail!("another idpsync serve answers on {}: stop it first", path.display());
            }
            std::fs::remove_file(&path).with_context(|| format!("removing the stale {}", path.display()))?;
        }
        let listener =
            tokio::net::UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(answer(stream, context.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the control socket cannot accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Some(ControlSocket { path, task }))
    }

    /// Control sockets are Unix sockets: elsewhere, none.
    #[cfg(not(unix))]
    pub(crate) async fn start(_context: Context) -> anyhow::Result<Option<ControlSocket>> {
        Ok(None)
    }

    /// Stops answering and removes the socket.
    pub(crate) fn stop(self) {
        self.task.abort();
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "cannot remove the control socket");
        }
    }
}

/// Reads one command from `stream`, runs it, and answers.
async fn answer(stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, context: Context) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut line = Vec::new();
    let answer = match BufReader::new(reader.take(REQUEST_MAX))
        .read_until(b'\n', &mut line)
        .await
    {
        Err(error) => Answer {
            error: Some(format!("reading the command: {error}")),
            ..Answer::default()
        },
        Ok(_) => match serde_json::from_slice::<ReadCommand>(&line) {
            Err(error) => Answer {
                error: Some(format!(
                    "not a read command this server knows ({error}): are the CLI and the server the same version?"
                )),
                ..Answer::default()
            },
            Ok(command) => {
                tracing::info!(?command, "running a read command for the CLI");
                let (result, captured) = output::capture(command.run(&context)).await;
                Answer {
                    stdout: String::from_utf8_lossy(&captured.stdout).into_owned(),
                    stderr: captured.stderr,
                    error: result.err().map(|error| format!("{error:#}")),
                }
            }
        },
    };
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    if let Err(error) = writer.write_all(&bytes).await {
        tracing::debug!(%error, "the CLI went away before its answer");
    }
    let _ = writer.shutdown().await;
}
