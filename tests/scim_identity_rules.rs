//! What the SCIM server refuses about a user's identity, over TCP: a userName that collides
//! with another in a compatibility form or another case, a userName with invisible or
//! reordering characters, and a change to the externalId by which an integration finds the
//! users and groups it owns, by every write path (PUT, PATCH, bulk).

mod common;

use common::{Client, TestServer};
use idpsync::engine::ids::IntegrationName;
use idpsync::engine::model::{Owner, UserProfile};
use idpsync::engine::{Command, Origin, Outcome};
use idpsync::storage::TenantId;
use serde_json::{Value, json};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn integration() -> Origin {
    Origin::integration(
        IntegrationName::new("okta").unwrap(),
        idpsync::engine::ids::SyncRunId::new(),
    )
}

/// A user and a group the `okta` integration owns, under IdP ids `00u1` and `00g1`.
async fn integration_owned(server: &TestServer) -> (String, String) {
    let tenant = server.engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let owner = Owner::Integration(IntegrationName::new("okta").unwrap());
    let user = Command::ProvisionUser {
        owner: owner.clone(),
        external_id: Some("00u1".into()),
        active: true,
        profile: UserProfile {
            user_name: "leaver@example.com".into(),
            ..UserProfile::default()
        },
    };
    let Outcome::UserProvisioned(user) = tenant.execute(user, integration()).await.unwrap().outcome else {
        unreachable!("a provisioned user")
    };
    let group = Command::CreateGroup {
        owner,
        external_id: Some("00g1".into()),
        display_name: "vpn".into(),
        members: vec![],
    };
    let Outcome::GroupCreated(group) = tenant.execute(group, integration()).await.unwrap().outcome else {
        unreachable!("a created group")
    };
    (user.to_string(), group.to_string())
}

fn assert_mutability(answer: &common::Answer, what: &str) {
    assert_eq!(answer.status.as_u16(), 400, "{what}: {}", answer.body);
    assert_eq!(answer.body["scimType"], "mutability", "{what}: {}", answer.body);
    assert!(
        answer.body["detail"].as_str().unwrap().contains("okta"),
        "{what}: the detail names the owner: {}",
        answer.body
    );
}

async fn external_id(client: &Client, path: &str) -> Value {
    client.get(path).await.expect(200).body["externalId"].clone()
}

/// Hardening issue, must-fix 9c: a SCIM client could rewrite (or remove) the externalId of a
/// user or group an integration owns, so that the integration no longer found it and could
/// not offboard a leaver.
#[tokio::test]
async fn no_scim_write_changes_the_external_id_of_an_integration_owned_resource() {
    let server = TestServer::start().await;
    let client = server.client("default");
    let (user, group) = integration_owned(&server).await;
    let user_path = format!("/Users/{user}");
    let group_path = format!("/Groups/{group}");

    let put = client
        .put(
            &user_path,
            &json!({"userName": "leaver@example.com", "externalId": "hidden"}),
        )
        .await;
    assert_mutability(&put, "PUT with another externalId");
    let put = client.put(&user_path, &json!({"userName": "leaver@example.com"})).await;
    assert_mutability(&put, "PUT without externalId");
    for operation in [
        json!({"op": "replace", "path": "externalId", "value": "hidden"}),
        json!({"op": "remove", "path": "externalId"}),
        json!({"op": "replace", "value": {"externalId": "hidden"}}),
    ] {
        let patch = client
            .patch(&user_path, &json!({"schemas": [PATCH_OP], "Operations": [operation]}))
            .await;
        assert_mutability(&patch, &format!("PATCH {operation}"));
        let patch = client
            .patch(&group_path, &json!({"schemas": [PATCH_OP], "Operations": [operation]}))
            .await;
        assert_mutability(&patch, &format!("group PATCH {operation}"));
    }
    let put = client
        .put(&group_path, &json!({"displayName": "vpn", "externalId": "hidden"}))
        .await;
    assert_mutability(&put, "group PUT");
    let bulk = client
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "PUT", "path": user_path, "data": {"userName": "leaver@example.com", "externalId": "hidden"}},
                {"method": "PATCH", "path": group_path, "data": {"schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "path": "externalId", "value": "hidden"}]}}]}),
        )
        .await
        .expect(200);
    for operation in bulk.body["Operations"].as_array().unwrap() {
        assert_eq!(operation["status"], "400", "{operation}");
        assert_eq!(operation["response"]["scimType"], "mutability", "{operation}");
    }
    assert_eq!(external_id(&client, &user_path).await, "00u1");
    assert_eq!(external_id(&client, &group_path).await, "00g1");

    // What is not the integration's key may still change, with the externalId sent as it is.
    client
        .put(
            &user_path,
            &json!({"userName": "leaver@example.com", "externalId": "00u1", "active": false}),
        )
        .await
        .expect(200);
    assert_eq!(client.get(&user_path).await.body["active"], false);
    let tenant = server.engine.require_tenant(&TenantId::default_tenant()).unwrap();
    let okta = IntegrationName::new("okta").unwrap();
    assert_eq!(
        tenant.state().owned_user(&okta, "00u1").map(|id| id.to_string()),
        Some(user),
        "the integration still finds its user"
    );
    server.stop().await;
}

/// Hardening issue, must-fix 9b: userNames that differ only in compatibility form or case,
/// or by control and bidirectional characters, were all accepted as new users.
#[tokio::test]
async fn user_names_that_look_alike_or_hide_characters_are_refused() {
    let server = TestServer::start().await;
    let client = server.client("default");
    client
        .post("/Users", &json!({"userName": "user@example.com"}))
        .await
        .expect(201);
    for taken in ["ｕｓｅｒ@example.com", "USER@example.com"] {
        let answer = client.post("/Users", &json!({"userName": taken})).await.expect(409);
        assert_eq!(answer.body["scimType"], "uniqueness", "{taken}");
    }
    for hidden in [
        "nul\u{0}@example.com",
        "tab\t@example.com",
        "del\u{7f}@example.com",
        "\u{202e}moc.elpmaxe@evil",
    ] {
        let answer = client.post("/Users", &json!({"userName": hidden})).await.expect(400);
        assert_eq!(answer.body["scimType"], "invalidValue", "{hidden:?}");
    }
    let listed = client.get("/Users").await.expect(200);
    assert_eq!(listed.body["totalResults"], 1);
    server.stop().await;
}

/// A user the SCIM client itself created may change its externalId.
#[tokio::test]
async fn a_scim_user_may_change_its_external_id() {
    let server = TestServer::start().await;
    let client = server.client("default");
    let id = client
        .post("/Users", &json!({"userName": "mine@example.com", "externalId": "a"}))
        .await
        .expect(201)
        .id();
    client
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "externalId", "value": "b"}]}),
        )
        .await
        .expect(200);
    assert_eq!(external_id(&client, &format!("/Users/{id}")).await, "b");
    server.stop().await;
}

/// Filters that scan compare names the way uniqueness does (NFKC and case fold): before, an
/// indexed `userName eq "ＵＳＥＲ…"` found the user while `sw` and `co`, which scan, did not.
#[tokio::test]
async fn scanning_filters_compare_names_as_uniqueness_does() {
    let server = TestServer::start().await;
    let client = server.client("acme");
    client
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "user1@example.com"}),
        )
        .await
        .expect(201);
    for expression in [
        "userName eq \"ＵＳＥＲ1@example.com\"",
        "userName sw \"ＵＳＥＲ\"",
        "userName co \"ＳＥＲ1\"",
    ] {
        let found = client
            .get(&format!("/Users?{}", common::filter(expression)))
            .await
            .expect(200);
        assert_eq!(found.body["totalResults"], 1, "{expression}");
    }
    server.stop().await;
}
