//! Embedding IdP-Sync in a management server's own process. Run it with
//!
//! ```sh
//! cargo run --example embed
//! ```
//!
//! It opens the engine on a temporary data directory, provisions a user and a group and binds
//! a policy to the group (commands, as the management server would submit them), follows the
//! change stream from a `seq`, deactivates the user and sees the access revoked, asks the
//! present and the past, and finally mounts the SCIM and management routers into its own axum
//! application and calls them over HTTP.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use idpsync::engine::ids::{Member, ResourceId, TokenId};
use idpsync::engine::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync::engine::{AccessDirection, Cause, Command, Origin, Outcome, Source, TenantSettings};
use idpsync::scim::{Principal, SharedSecret};
use idpsync::storage::{Seq, TenantId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = tempfile::tempdir()?;
    let engine = Arc::new(idpsync::open(data_dir.path(), TenantSettings::default()).await?);
    let tenant = engine.require_tenant(&TenantId::default_tenant())?;
    let origin = Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    };

    // 1. Identities and a binding, submitted in-process.
    let profile = UserProfile {
        user_name: "alice@example.com".into(),
        ..UserProfile::default()
    };
    let provisioned = tenant
        .execute(
            Command::ProvisionUser {
                owner: Owner::Operator,
                external_id: None,
                active: true,
                profile,
            },
            origin.clone(),
        )
        .await?;
    let Outcome::UserProvisioned(alice) = provisioned.outcome else {
        return Err("provisioning answers with the new user's id".into());
    };
    let created = tenant
        .execute(
            Command::CreateGroup {
                owner: Owner::Operator,
                external_id: None,
                display_name: "engineering".into(),
                members: vec![Member::User(alice)],
            },
            origin.clone(),
        )
        .await?;
    let Outcome::GroupCreated(engineering) = created.outcome else {
        return Err("creating a group answers with its id".into());
    };
    let policy = ResourceRef {
        kind: ResourceKind::Policy,
        id: ResourceId::new("office-network")?,
    };
    let bound = tenant
        .execute(
            Command::SetBinding {
                resource: policy.clone(),
                groups: BindingGroups::Policy {
                    sources: vec![engineering],
                    destinations: vec![engineering],
                },
            },
            origin.clone(),
        )
        .await?;
    println!("bound {policy} at seq {}", bound.head);

    // 2. Follow the change stream from the next seq, then deactivate alice.
    let mut changes = tenant.subscribe(bound.head.next());
    let deactivated = tenant
        .execute(
            Command::SetUserActive {
                user: alice,
                active: false,
            },
            origin,
        )
        .await?;
    let applied = changes.next().await?;
    assert_eq!(applied.event.seq, deactivated.head);
    for change in &applied.access {
        let verb = match change.direction {
            AccessDirection::Granted => "granted",
            AccessDirection::Revoked => "revoked",
        };
        println!(
            "seq {}: {verb} {} ({}) for user {} via group {}",
            change.seq,
            change.resource,
            change.role.as_str(),
            change.user,
            change.via
        );
    }
    assert!(applied.access.iter().all(|c| c.direction == AccessDirection::Revoked));

    // 3. The present and the past.
    let now = tenant.state();
    println!(
        "now: alice active = {}",
        now.user(alice).map(|u| u.active).unwrap_or(false)
    );
    let before = tenant.state_at(bound.head).await?;
    let grants_then = idpsync::engine::access::grants(&before, alice);
    println!("at seq {}: alice had {} grants", bound.head, grants_then.len());
    let members_then = tenant
        .with_history(|history, _| history.direct_members_at(engineering, Seq(bound.head.0)))
        .await;
    println!(
        "at seq {}: engineering had {} direct members",
        bound.head,
        members_then.len()
    );

    // 4. The SCIM and management routers in the server's own application.
    let principal = |token| Principal {
        tenant: TenantId::default_tenant(),
        token,
    };
    // Here one fixed secret per door; a management server checks its own tokens instead.
    let scim_auth = Arc::new(SharedSecret::new("scim-secret", principal(TokenId::new())));
    let admin_auth = Arc::new(SharedSecret::new("admin-secret", principal(TokenId::new())));
    let api = idpsync::api::ApiState::new(Arc::clone(&engine), admin_auth, idpsync::api::ApiSettings::default())?;
    let app = Router::new()
        .route("/", get(|| async { "the management server's own routes" }))
        .nest(
            "/idp/scim/v2",
            idpsync::scim_router(Arc::clone(&engine), scim_auth, "/idp/scim/v2"),
        )
        .nest("/idp/api/v1", idpsync::api::router(api.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let http = reqwest::Client::new();
    let users = http
        .get(format!("http://{address}/idp/scim/v2/Users"))
        .bearer_auth("scim-secret")
        .send()
        .await?
        .text()
        .await?;
    println!("SCIM GET /Users: {users}");
    let detail = http
        .get(format!(
            "http://{address}/idp/api/v1/tenants/default/users/alice@example.com"
        ))
        .bearer_auth("admin-secret")
        .send()
        .await?
        .text()
        .await?;
    println!("API GET /users/alice@example.com: {detail}");

    api.close_streams();
    let _ = stop.send(());
    server.await??;
    engine.shutdown().await;
    Ok(())
}
