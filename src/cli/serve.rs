//! `idpsync serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use idpsync::config::DEFAULT_LISTEN;
use idpsync::shared_tokens::SharedTokens;
use idpsync::token_book::{TokenBook, USE_FLUSH_INTERVAL, UseRecorder};
use idpsync::tokens::{TokenAuthenticator, TokenKind, TokenStore};

use super::Context;

/// On a log other replicas write, every head is read at least this often besides the
/// notifications of their appends, so that a missed notification delays a record by this much
/// at most.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "IDPSYNC_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Write a new SCIM token for the `default` tenant to <data-dir>/bootstrap-token even though
    /// the token store is not empty (a first start does so on its own)
    #[arg(long)]
    new_bootstrap_token: bool,
}

/// Listens for SIGINT and SIGTERM from now on (a signal that comes before the returned future
/// is first polled is not lost, and does not kill the process), and resolves on the first.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The configured bounds, with the connection cap kept within the open-files limit (raised
/// to its hard limit first): a cap the process cannot reach would fail accepts instead of
/// holding newcomers in the backlog.
fn service_settings(context: &Context) -> idpsync::server::ServiceSettings {
    /// Files kept for the log, snapshots, token and key files and outgoing IdP connections.
    const FILES_RESERVED: u64 = 256;
    let mut settings = context.config.service_settings();
    let limits = &mut settings.http;
    if let Some(current) = idpsync::server::raise_open_files_limit() {
        let reachable = usize::try_from(current.saturating_sub(FILES_RESERVED).max(1)).unwrap_or(usize::MAX);
        if limits.connections_max > reachable {
            tracing::warn!(
                configured = limits.connections_max,
                open_files_limit = current,
                "http.connections_max is above what the open-files limit allows; using {reachable}"
            );
            limits.connections_max = reachable;
        }
    }
    settings
}

/// The SCIM and the API's token checks, where the tokens are kept (for the console, for
/// naming tokens in audits, and for writing when they were last used), and the bootstrap
/// token's file if one was made.
struct Doors {
    scim: Arc<TokenAuthenticator>,
    admin: Arc<TokenAuthenticator>,
    book: TokenBook,
    bootstrapped: Option<std::path::PathBuf>,
}

/// Tokens in the data directory's file: one process serves the log.
fn file_doors(context: &Context, new_bootstrap_token: bool) -> anyhow::Result<Doors> {
    let bootstrapped = if new_bootstrap_token {
        Some(idpsync::tokens::bootstrap_again(&context.data_dir)?)
    } else {
        idpsync::tokens::bootstrap(&context.data_dir)?
    };
    let store = TokenStore::new(&context.data_dir);
    Ok(Doors {
        scim: Arc::new(TokenAuthenticator::new(store.clone())?),
        admin: Arc::new(TokenAuthenticator::admin(store.clone())?),
        book: TokenBook::File(store),
        bootstrapped,
    })
}

/// Tokens in the shared store: every replica checks the same ones. A tokens file in the data
/// directory (from before the store was shared) is imported first.
async fn shared_doors(
    context: &Context,
    engine: &idpsync::engine::Engine,
    new_bootstrap_token: bool,
) -> anyhow::Result<Doors> {
    let shared = SharedTokens::new(Arc::clone(engine.store()));
    let file = TokenStore::new(&context.data_dir);
    if file.path().exists() {
        let imported = shared.import(&file).await?;
        if imported > 0 {
            tracing::info!(imported, file = %file.path().display(), "imported the data directory's tokens into the shared store");
        }
    }
    let bootstrapped = if new_bootstrap_token {
        Some(shared.bootstrap_again(&context.data_dir).await?)
    } else {
        shared.bootstrap(&context.data_dir).await?
    };
    Ok(Doors {
        scim: shared.authenticator(TokenKind::Scim).await?,
        admin: shared.authenticator(TokenKind::Admin).await?,
        book: TokenBook::Shared(shared),
        bootstrapped,
    })
}

pub(crate) async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let listen = match args.listen.or(context.config.listen) {
        Some(address) => address,
        None => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    // The recorder goes in first, so that everything the engine records while opening counts.
    let metrics = idpsync::metrics::install().context("installing the Prometheus recorder")?;
    let engine = Arc::new(context.open_own_engine().await?);
    for tenant in &context.config.tenants {
        engine.ensure_tenant(&tenant.id).await?;
    }
    // Replicas on one database fold in each other's appends; stops with the server.
    let follower = engine.follow_other_writers(FOLLOW_EVERY);
    if follower.is_some() {
        tracing::info!("following the appends of other replicas on the same database");
    }
    let revocations = idpsync::revocations::watch(Arc::clone(&engine));
    let scheduler = idpsync_drivers::scheduler::Scheduler::start(super::sync::scheduled(context, &engine).await?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let scim_url = format!("http://{address}{}", idpsync::server::SCIM_MOUNT);
    // The first start gives the `default` tenant a SCIM token, so that `serve` alone is a
    // working endpoint. The secret goes to a private file, never to the log.
    let doors = if engine.store().is_shared() {
        shared_doors(context, &engine, args.new_bootstrap_token).await?
    } else {
        file_doors(context, args.new_bootstrap_token)?
    };
    if let Some(path) = &doors.bootstrapped {
        tracing::info!(token_file = %path.display(), scim_base_url = %scim_url, "created a SCIM token for tenant `default`; it is in the token file");
    }
    // When tokens were last used is noted in memory and written once a minute and at the end.
    let uses = UseRecorder::start(
        doors.book.clone(),
        vec![doors.scim.uses(), doors.admin.uses()],
        USE_FLUSH_INTERVAL,
    );
    let (authenticator, admin, token_book) = (doors.scim, doors.admin, doors.book);
    let api = idpsync::api::ApiState::new(
        Arc::clone(&engine),
        admin,
        idpsync::api::ApiSettings {
            integrations: Some(scheduler.handle()),
            tokens: Some(token_book),
            // The console's log page shows the newest checkpoint signed here.
            data_dir: Some(context.data_dir.clone()),
            ..idpsync::api::ApiSettings::default()
        },
    )
    .context("starting the change streams' thread")?;
    let key = idpsync::checkpoint::key::for_store(&**engine.store(), &context.data_dir).await?;
    let signer = idpsync::checkpoint::signer::CheckpointSigner::start(
        Arc::clone(&engine),
        context.data_dir.clone(),
        key,
        context.config.checkpoints.policy(),
    );
    let control = super::control::ControlSocket::start(Context {
        running: Some(super::Running {
            engine: Arc::clone(&engine),
            integrations: scheduler.handle(),
        }),
        ..context.clone()
    })
    .await?;
    let stop_requested = shutdown_signal()?;
    tracing::info!(%address, scim_base_url = %scim_url, data_dir = %context.data_dir.display(), storage = %context.storage, tenants_loaded = engine.loaded_tenants().len(), "idpsync is serving");
    // Order of shutdown: end the change streams (they never finish on their own, and a
    // graceful shutdown waits for every response), stop accepting and finish requests in
    // flight (so no new commands arrive), then stop the writers after their queued commands,
    // writing final snapshots.
    let streams = api.clone();
    let settings = service_settings(context);
    idpsync::server::run(
        listener,
        idpsync::server::service(Arc::clone(&engine), authenticator, api, metrics, &settings),
        &settings.http,
        async move {
            stop_requested.await;
            streams.close_streams();
        },
    )
    .await?;
    if let Some(control) = control {
        control.stop();
    }
    // The schedule stops before the writers, so that no sync is left waiting on a closed one;
    // the last checkpoints are signed while the writers still run.
    scheduler.shutdown().await;
    signer.shutdown().await;
    uses.shutdown().await;
    drop(follower);
    revocations.abort();
    tracing::info!("shutting down: writing snapshots");
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
