//! `idpsync serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use idpsync::config::DEFAULT_LISTEN;

use super::Context;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "IDPSYNC_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the service");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

pub(crate) async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<()> {
    let listen = match args.listen.or(context.config.listen) {
        Some(address) => address,
        None => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    let engine = Arc::new(
        idpsync::open(&context.data_dir, context.config.tenant_settings())
            .await
            .with_context(|| format!("opening the data directory {}", context.data_dir.display()))?,
    );
    for tenant in &context.config.tenants {
        engine.ensure_tenant(&tenant.id).await?;
    }
    let scheduler = idpsync_drivers::scheduler::Scheduler::start(super::sync::scheduled(context, &engine).await?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let scim_url = format!("http://{address}{}", idpsync::server::SCIM_MOUNT);
    // The first start gives the `default` tenant a SCIM token, so that `serve` alone is a
    // working endpoint. The secret goes to a private file, never to the log.
    if let Some(path) = idpsync::tokens::bootstrap(&context.data_dir)? {
        tracing::info!(token_file = %path.display(), scim_base_url = %scim_url, "created a SCIM token for tenant `default`; it is in the token file");
    }
    let authenticator = idpsync::tokens::TokenAuthenticator::new(idpsync::tokens::TokenStore::new(&context.data_dir))?;
    tracing::info!(%address, scim_base_url = %scim_url, data_dir = %context.data_dir.display(), tenants = engine.tenant_ids().len(), "idpsync is serving");
    // Order of shutdown: stop accepting and finish requests in flight (so no new commands
    // arrive), then stop the writers after their queued commands, writing final snapshots.
    idpsync::server::run(
        listener,
        idpsync::server::router(Arc::clone(&engine), Arc::new(authenticator)),
        shutdown_signal(),
    )
    .await?;
    // The schedule stops before the writers, so that no sync is left waiting on a closed one.
    scheduler.shutdown().await;
    tracing::info!("shutting down: writing snapshots");
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
