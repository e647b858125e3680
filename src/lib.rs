//! openZro IdP-Sync: keeps a network management server's users, groups and memberships in step
//! with the company's identity provider, with an append-only, hash-chained log of every
//! identity event and the access it granted or revoked.
//!
//! This crate is the binary `idpsync` and the facade for embedding: it re-exports the engine,
//! the storage layer and the SCIM service, opens them on a data directory, and offers the
//! routers a management server mounts in its own axum application (see `examples/embed.rs`):
//! SCIM ([`scim_router`]) and the management API ([`api::router`]).
//!
//! # Layout
//! - [`actions`]: the trail of operators' actions (holds confirmed, tokens revoked, …) and the
//!   admin tokens that did them;
//! - [`config`]: the TOML configuration and its environment overrides;
//! - [`server`]: the HTTP router and server of `idpsync serve` (health, SCIM at `/scim/v2`,
//!   the management API at `/api/v1`, `/metrics`);
//! - [`api`]: the management API: bindings, the directory now and in the past, timelines,
//!   integrations, the change stream (SSE), audits, erasure;
//! - [`console`]: the admin console in the browser at `/admin` (sessions, CSRF, pages);
//! - [`audit`]: the offboarding audit and the leavers' report as text, HTML and JSON;
//! - [`checkpoint`]: signed checkpoints of the log and their verification;
//! - [`metrics`]: the Prometheus recorder and the request middleware;
//! - [`storage_location`]: the `storage` setting: which log store to open;
//! - [`copy`]: copying logs between stores (`idpsync log copy`), the migration path between
//!   backends;
//! - [`tokens`]: API tokens (hashed, revocable, expiring) and the authenticators over them;
//!   [`shared_tokens`]: the same in a store replicas share; [`token_book`]: either of them
//!   behind one interface, and the writer of when tokens were last used;
//! - [`workload`]: the synthetic workload of `idpsync dev seed`;
//! - [`engine`], [`storage`], [`scim`]: the engine, the log and the SCIM service (re-exported
//!   crates).
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let engine = idpsync::open(dir.path(), idpsync::engine::TenantSettings::default()).await.unwrap();
//! let tenant = engine.require_tenant(&idpsync::storage::TenantId::default_tenant()).unwrap();
//! assert_eq!(tenant.state().user_count(), 0);
//! engine.shutdown().await;
//! # });
//! ```

pub mod actions;
pub mod api;
pub mod audit;
pub mod backup;
pub mod checkpoint;
pub mod config;
pub mod console;
pub mod copy;
pub mod metrics;
pub mod public_url;
pub mod revocations;
pub mod server;
pub mod shared_tokens;
pub mod storage_location;
pub mod token_book;
pub mod tokens;
pub mod workload;

use std::path::Path;
use std::sync::Arc;

/// The version and the commit this build is from: `0.1.0 (commit 1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("IDPSYNC_COMMIT"), ")");

pub use idpsync_engine as engine;
pub use idpsync_scim as scim;
pub use idpsync_storage as storage;

use idpsync_engine::{Engine, EngineError, TenantSettings};
use idpsync_storage::{LogStore, RedbStore};

use storage_location::StorageLocation;

/// Opens the embedded log store (redb) in `data_dir`, creating it if needed. Refuses a data
/// directory, database or key file that other users can read (see
/// [`storage::private_files`]).
pub fn open_store(data_dir: &Path) -> Result<Arc<dyn LogStore>, idpsync_storage::StoreError> {
    check_key_files(data_dir)?;
    Ok(Arc::new(RedbStore::open(data_dir)?))
}

/// Opens the log store at `location`; `data_dir` keeps the files that are not in the store
/// (tokens, the checkpoint key, cursors), whose privacy is checked as [`open_store`] does.
pub async fn open_store_at(
    location: &StorageLocation,
    data_dir: &Path,
) -> Result<Arc<dyn LogStore>, idpsync_storage::StoreError> {
    check_key_files(data_dir)?;
    location.open().await
}

/// Refuses key files in `data_dir` that other users can read.
fn check_key_files(data_dir: &Path) -> Result<(), idpsync_storage::StoreError> {
    for key_file in [
        tokens::TOKENS_FILE,
        tokens::BOOTSTRAP_TOKEN_FILE,
        checkpoint::key::KEY_FILE,
    ] {
        idpsync_storage::private_files::check_file(&data_dir.join(key_file))?;
    }
    Ok(())
}

/// Opens the engine on `data_dir`: every tenant from its latest snapshot plus the log after it.
pub async fn open(data_dir: &Path, settings: TenantSettings) -> Result<Engine, EngineError> {
    Engine::open(open_store(data_dir)?, settings).await
}

/// Opens the engine on the log store at `location`, with `data_dir` as in [`open_store_at`].
pub async fn open_at(
    location: &StorageLocation,
    data_dir: &Path,
    settings: TenantSettings,
) -> Result<Engine, EngineError> {
    Engine::open(open_store_at(location, data_dir).await?, settings).await
}

/// The SCIM service provider over `engine`, for the tenants `authenticator`'s tokens name,
/// with the default bounds; `mount_path` is where the caller nests it (it appears in
/// `meta.location`). [`scim::router`] takes every setting.
pub fn scim_router(engine: Arc<Engine>, authenticator: Arc<dyn scim::Authenticator>, mount_path: &str) -> axum::Router {
    let settings = scim::Settings {
        mount_path: mount_path.to_owned(),
        ..scim::Settings::default()
    };
    scim::router(engine, authenticator, settings)
}
