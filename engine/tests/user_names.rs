//! userNames in a log written before names were compared as they are now (compatibility
//! forms and case folded): the tenant loads, the earliest user keeps the name, and the others
//! keep theirs.

mod common;

use std::sync::Arc;

use common::{origin, provision};
use idpsync_engine::event::{ENVELOPE_VERSION, Envelope, Event, Personal, encode};
use idpsync_engine::ids::UserId;
use idpsync_engine::model::{Owner, UserProfile};
use idpsync_engine::{Cause, Command, Engine, Rejection, Source, SubmitError, TenantSettings};
use idpsync_storage::{AppendBatch, EventId, LogStore, MemoryStore, NewRecord, Seq, TenantId, Timestamp};

/// Appends a user provisioned with `user_name` straight to the log, as an older build that
/// compared names lowercased only could have.
async fn append_user(store: &Arc<dyn LogStore>, seq: u64, user: UserId, user_name: &str) {
    let envelope = Envelope {
        source: Source::Operator,
        cause: Cause::Unspecified,
        event: Event::UserProvisioned {
            user,
            owner: Owner::Scim,
            external_id: None,
            active: true,
            personal: Personal::Plain(Box::new(UserProfile {
                user_name: user_name.to_owned(),
                ..UserProfile::default()
            })),
        },
    };
    store
        .append(AppendBatch {
            tenant: TenantId::default_tenant(),
            first_seq: Seq(seq),
            records: vec![NewRecord {
                recorded_at: Timestamp(1_700_000_000_000_000 + seq as i64),
                event_id: EventId::new(),
                version: ENVELOPE_VERSION,
                payload: encode(&envelope),
            }],
            secrets: Vec::new(),
        })
        .await
        .unwrap();
}

/// Hardening issue, must-fix 9b: userNames are now unique by compatibility form and case
/// fold; a log that already gives two users one such name must still load, and the earlier
/// user keeps the name.
#[tokio::test]
async fn a_log_with_names_that_now_collide_loads_and_the_earliest_user_keeps_the_name() {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    store.ensure_tenant(&TenantId::default_tenant()).await.unwrap();
    let (earlier, later) = (UserId::new(), UserId::new());
    assert!(earlier < later);
    append_user(&store, 1, earlier, "user@example.com").await;
    append_user(&store, 2, later, "ｕｓｅｒ@example.com").await;

    let engine = Engine::open(Arc::clone(&store), TenantSettings::default())
        .await
        .unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let state = tenant.state();
    assert_eq!(state.user_count(), 2, "both users are loaded");
    for name in ["user@example.com", "ｕｓｅｒ@example.com", "USER@EXAMPLE.COM"] {
        assert_eq!(state.user_by_name(name).unwrap().id, earlier, "{name}");
    }
    assert_eq!(
        state.user_name_collisions(),
        vec![("user@example.com".to_owned(), vec![earlier, later])]
    );

    // The later user keeps its own name: it can still be changed, and deactivated, by a full
    // replace that sends the name it has.
    let replace = Command::ReplaceUser {
        user: later,
        expected_version: None,
        external_id: None,
        active: Some(false),
        profile: UserProfile {
            user_name: "ｕｓｅｒ@example.com".to_owned(),
            display_name: Some("User".to_owned()),
            ..UserProfile::default()
        },
    };
    tenant.execute(replace, origin()).await.unwrap();
    assert!(!tenant.state().user(later).unwrap().active);
    // No third user can take the name.
    let third = tenant.execute(provision("User@Example.com"), origin()).await;
    assert!(
        matches!(third, Err(SubmitError::Rejected(Rejection::UserNameTaken { existing, .. })) if existing == earlier),
        "{third:?}"
    );
    // Once the earlier user is gone, the later one holds the name.
    let delete = Command::DeleteUser {
        user: earlier,
        expected_version: None,
    };
    tenant.execute(delete, origin()).await.unwrap();
    assert_eq!(tenant.state().user_by_name("user@example.com").unwrap().id, later);
    engine.shutdown().await;

    // A restart rebuilds the lookups at once and agrees.
    let engine = Engine::open(store, TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    assert_eq!(tenant.state().user_by_name("USER@example.com").unwrap().id, later);
    assert!(tenant.state().user_name_collisions().is_empty());
    engine.shutdown().await;
}
