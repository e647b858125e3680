//! Real clients' request sequences, replayed in their exact shapes against the real server:
//! Entra ID (both PATCH dialects), Okta (OIN and Group Push), authentik and JumpCloud. Each test
//! is a lifecycle (joiner, mover, leaver, rename, group push, re-provisioning) checked through
//! GET. The request shapes follow the notes in the shared `scim-clients.md` (§1.1 to §1.4).

mod common;

use common::{Answer, Client, TestServer, filter};
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn find_user(client: &Client, user_name: &str) -> Answer {
    client
        .get(&format!("/Users?{}", filter(&format!("userName eq \"{user_name}\""))))
        .await
        .expect(200)
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|member| member["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn entra_joiner_mover_leaver_in_the_default_dialect() {
    let server = TestServer::start().await;
    let entra = server.client("default");

    // Test Connection: a random GUID must give 200 and an empty list, with `Resources`.
    let probe = find_user(&entra, "2a9f4c3e-36d5-4b8e-9a64-d2f8b7f0a1c7").await;
    assert_eq!(probe.body["totalResults"], 0);
    assert_eq!(probe.body["Resources"], json!([]));

    // Joiner: the matching GET, then the POST with client-sent meta, roles: [] and an empty
    // enterprise schema.
    assert_eq!(find_user(&entra, "Test_User_ab6490ee").await.body["totalResults"], 0);
    let created = entra
        .post(
            "/Users",
            &json!({"schemas":[USER, ENTERPRISE],
                "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee","active":true,
                "emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b@testuser.com"}],
                "meta":{"resourceType":"User"},
                "name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}),
        )
        .await
        .expect(201);
    let id = created.id();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/Users/{id}", server.base).as_str())
    );
    assert_eq!(created.body["meta"]["resourceType"], "User");

    // Mover: the default-dialect PATCH, capitalised ops and a boolean string.
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
                {"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
                {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"},
                {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"45619541-bb3f-4a6e-8a3b-1e3f0a6f9b3c"}]}),
        )
        .await
        .expect(200);
    let user = entra.get(&format!("/Users/{id}")).await.expect(200).body;
    assert_eq!(user["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(user["name"]["familyName"], "updatedFamilyName");
    assert_eq!(user["name"]["givenName"], "givenName");
    assert_eq!(user[ENTERPRISE]["employeeNumber"], "Eqpj");
    assert_eq!(
        user[ENTERPRISE]["manager"]["value"],
        "45619541-bb3f-4a6e-8a3b-1e3f0a6f9b3c"
    );

    // Groups: the matching GET, then a POST with Microsoft's own schema URN.
    let none = entra
        .get(&format!(
            "/Groups?excludedAttributes=members&{}",
            filter("displayName eq \"VPN Users\"")
        ))
        .await
        .expect(200);
    assert_eq!(none.body["totalResults"], 0);
    let group = entra
        .post(
            "/Groups",
            &json!({"schemas":[GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"VPN Users","meta":{"resourceType":"Group"}}),
        )
        .await
        .expect(201)
        .id();
    // One PATCH renames, adds and removes (the `update_group` fixture's shape).
    let colleague = entra
        .post("/Users", &json!({"userName":"colleague@contoso.com","active":true}))
        .await
        .expect(201)
        .id();
    entra
        .patch(
            &format!("/Groups/{group}"),
            &json!({"Operations":[
                {"op":"Replace","path":"displayName","value":"VPN Staff"},
                {"op":"Add","path":"members","value":[{"$ref":null,"value":id},{"$ref":null,"value":colleague}]},
                {"op":"Remove","path":"members","value":[{"$ref":null,"value":colleague}]}]}),
        )
        .await
        .expect(200);
    let found = entra
        .get(&format!(
            "/Groups?excludedAttributes=members&{}",
            filter("displayName eq \"vpn staff\"")
        ))
        .await
        .expect(200);
    assert_eq!(found.body["totalResults"], 1);
    assert!(found.body["Resources"][0].get("members").is_none(), "members excluded");
    let read = entra.get(&format!("/Groups/{group}")).await.expect(200).body;
    assert_eq!(member_ids(&read), vec![id.clone()]);
    let user = entra.get(&format!("/Users/{id}")).await.expect(200).body;
    assert_eq!(user["groups"][0]["value"], group.as_str());
    assert_eq!(user["groups"][0]["display"], "VPN Staff");

    // Leaver: `active` as the string "False"; the user stays visible to GET and filters.
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"Replace","path":"active","value":"False"}]}),
        )
        .await
        .expect(200);
    let inactive = find_user(&entra, "test_user_AB6490EE").await;
    assert_eq!(inactive.body["totalResults"], 1);
    assert_eq!(inactive.body["Resources"][0]["active"], false);
    let by_external_id = entra
        .get(&format!(
            "/Users?{}",
            filter("externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\"")
        ))
        .await
        .expect(200);
    assert_eq!(by_external_id.body["totalResults"], 1);

    // Hard delete 30 days later.
    entra.delete(&format!("/Users/{id}")).await.expect(204);
    entra.get(&format!("/Users/{id}")).await.expect(404);
    let read = entra.get(&format!("/Groups/{group}")).await.expect(200).body;
    assert!(member_ids(&read).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn entra_aad_opt_scim062020_dialect() {
    let server = TestServer::start().await;
    let entra = server.client("default");
    let id = entra
        .post(
            "/Users",
            &json!({"schemas":[USER],"userName":"bjfe@contoso.com","active":true,"displayName":"Old","name":{"givenName":"G","familyName":"F"}}),
        )
        .await
        .expect(201)
        .id();
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}),
        )
        .await
        .expect(200);
    let user = entra.get(&format!("/Users/{id}")).await.expect(200).body;
    assert_eq!(user["displayName"], "Bjfe");
    assert_eq!(user["name"], json!({"givenName":"Kkom","familyName":"Unua"}));
    assert_eq!(user[ENTERPRISE]["employeeNumber"], "Aklq");

    let group = entra
        .post(
            "/Groups",
            &json!({"schemas":[GROUP],"displayName":"Ops","members":[{"value":id}]}),
        )
        .await
        .expect(201)
        .id();
    entra
        .patch(
            &format!("/Groups/{group}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"remove","path":format!("members[value eq \"{id}\"]")}]}),
        )
        .await
        .expect(200);
    assert!(member_ids(&entra.get(&format!("/Groups/{group}")).await.body).is_empty());
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","path":"active","value":false}]}),
        )
        .await
        .expect(200);
    assert_eq!(entra.get(&format!("/Users/{id}")).await.body["active"], false);
    server.stop().await;
}

#[tokio::test]
async fn okta_runscope_steps_and_oin_lifecycle() {
    let server = TestServer::start().await;
    let okta = server
        .client("default")
        .with_header("user-agent", "Okta SCIM Client 1.0.0");

    // Exists check with paging parameters, then create with Okta's extras.
    let exists = okta
        .get(&format!(
            "/Users?{}&startIndex=1&count=100",
            filter("userName eq \"isabella@example.com\"")
        ))
        .await
        .expect(200);
    assert_eq!(exists.body["totalResults"], 0);
    assert!(exists.body["itemsPerPage"].is_u64() && exists.body["startIndex"].is_u64());
    let user = json!({"schemas":[USER],"userName":"isabella@example.com",
        "name":{"givenName":"Isabella","familyName":"Ito"},"emails":[{"primary":true,"value":"isabella@example.com","type":"work"}],
        "displayName":"Isabella Ito","locale":"en-US","externalId":"00u1a2b3c4D5e6F7g8h9","groups":[],"password":"1mz050nq","active":true});
    let created = okta.post("/Users", &user).await.expect(201);
    let id = created.id();
    assert_eq!(created.body["active"], true);
    assert!(created.body.get("password").is_none(), "passwords are never kept");

    // Re-POST: 409 with scimType uniqueness, also for a case variant.
    let conflict = okta.post("/Users", &user).await.expect(409);
    assert_eq!(conflict.body["scimType"], "uniqueness");
    assert_eq!(conflict.body["status"], "409");
    let mut shouting = user.clone();
    shouting["userName"] = json!("ISABELLA@EXAMPLE.COM");
    okta.post("/Users", &shouting).await.expect(409);

    // Username case check; first page shape; 404 format.
    assert_eq!(find_user(&okta, "ISABELLA@EXAMPLE.COM").await.body["totalResults"], 1);
    let page = okta.get("/Users?count=1&startIndex=1").await.expect(200);
    assert_eq!(
        page.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(page.body["Resources"][0]["emails"][0]["value"], "isabella@example.com");
    let missing = okta.get("/Users/00u-not-there").await.expect(404);
    assert_eq!(missing.body["status"], "404");
    assert!(missing.body["detail"].is_string());

    // OIN update: GET, edit, PUT the whole user back (with groups: [] and meta).
    let mut full = okta.get(&format!("/Users/{id}")).await.expect(200).body;
    full["name"]["familyName"] = json!("Ito-Smith");
    full["groups"] = json!([]);
    okta.put(&format!("/Users/{id}"), &full).await.expect(200);
    // A PUT that omits `active` never deactivates.
    let mut without_active = full.clone();
    without_active.as_object_mut().unwrap().remove("active");
    okta.put(&format!("/Users/{id}"), &without_active).await.expect(200);
    assert_eq!(okta.get(&format!("/Users/{id}")).await.body["active"], true);

    // Deactivation: the path-less PATCH. Okta never DELETEs users.
    okta.patch(
        &format!("/Users/{id}"),
        &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","value":{"active":false}}]}),
    )
    .await
    .expect(200);
    let inactive = okta.get(&format!("/Users/{id}")).await.body;
    assert_eq!(inactive["active"], false);
    assert_eq!(inactive["name"]["familyName"], "Ito-Smith");

    // Re-provisioning of the deactivated user: found by the filter, reactivated.
    let found = find_user(&okta, "isabella@example.com").await;
    assert_eq!(found.body["Resources"][0]["active"], false);
    okta.patch(
        &format!("/Users/{id}"),
        &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","value":{"active":true}}]}),
    )
    .await
    .expect(200);
    assert_eq!(okta.get(&format!("/Users/{id}")).await.body["active"], true);

    // AIW apps deprovision with a PUT that says active: false.
    let mut deactivate = okta.get(&format!("/Users/{id}")).await.body;
    deactivate["active"] = json!(false);
    okta.put(&format!("/Users/{id}"), &deactivate).await.expect(200);
    assert_eq!(okta.get(&format!("/Users/{id}")).await.body["active"], false);
    server.stop().await;
}

#[tokio::test]
async fn okta_group_push_with_rename_on_every_membership_update() {
    let server = TestServer::start().await;
    let okta = server.client("default");
    let mut users = Vec::new();
    for name in ["ann", "bob", "cid"] {
        users.push(
            okta.post(
                "/Users",
                &json!({"schemas":[USER],"userName":format!("{name}@example.com"),"active":true}),
            )
            .await
            .expect(201)
            .id(),
        );
    }
    let created = okta
        .post(
            "/Groups",
            &json!({"schemas":[GROUP],"displayName":"Engineering","members":[]}),
        )
        .await
        .expect(201);
    let group = created.id();
    okta.patch(
        &format!("/Groups/{group}"),
        &json!({"schemas":[PATCH_OP],"Operations":[
            {"op":"replace","value":{"id":group,"displayName":"Engineering"}},
            {"op":"add","path":"members","value":[{"value":users[0],"display":"ann@example.com"},{"value":users[1],"display":"bob@example.com"}]}]}),
    )
    .await
    .expect(200);
    // Rename, remove one by value filter, add another, in one request.
    okta.patch(
        &format!("/Groups/{group}"),
        &json!({"schemas":[PATCH_OP],"Operations":[
            {"op":"replace","value":{"id":group,"displayName":"Engineering EU"}},
            {"op":"remove","path":format!("members[value eq \"{}\"]", users[0])},
            {"op":"add","path":"members","value":[{"value":users[2],"display":"cid@example.com"}]}]}),
    )
    .await
    .expect(200);
    let read = okta.get(&format!("/Groups/{group}")).await.expect(200).body;
    assert_eq!(read["displayName"], "Engineering EU");
    assert_eq!(member_ids(&read), sorted(vec![users[1].clone(), users[2].clone()]));
    // The optional full replace of members.
    okta.patch(
        &format!("/Groups/{group}"),
        &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","path":"members","value":[{"value":users[0]}]}]}),
    )
    .await
    .expect(200);
    assert_eq!(
        member_ids(&okta.get(&format!("/Groups/{group}")).await.body),
        vec![users[0].clone()]
    );
    // "Unlink + delete".
    okta.delete(&format!("/Groups/{group}")).await.expect(204);
    okta.get(&format!("/Groups/{group}")).await.expect(404);
    server.stop().await;
}

#[tokio::test]
async fn authentik_put_updates_and_one_member_per_operation() {
    let server = TestServer::start().await;
    let authentik = server.client("default");
    let config = authentik.get("/ServiceProviderConfig").await.expect(200).body;
    assert_eq!(config["patch"]["supported"], true);
    let chunk = config["bulk"]["maxOperations"].as_u64().unwrap();
    assert!(chunk >= 1);

    let alice = authentik
        .post(
            "/Users",
            &json!({"schemas":[USER],"userName":"alice","name":{"formatted":"Alice A","givenName":"Alice","familyName":"A"},
                "displayName":"Alice A","active":true,"emails":[{"value":"alice@example.org","type":"other","primary":true}],"externalId":"ak-1"}),
        )
        .await
        .expect(201)
        .id();
    let bob = authentik
        .post(
            "/Users",
            &json!({"schemas":[USER],"userName":"bob","active":true,"externalId":"ak-2"}),
        )
        .await
        .expect(201)
        .id();
    // Updates are PUTs of the whole user.
    authentik
        .put(
            &format!("/Users/{alice}"),
            &json!({"schemas":[USER],"userName":"alice","name":{"formatted":"Alice B","givenName":"Alice","familyName":"B"},
                "displayName":"Alice B","active":true,"emails":[{"value":"alice@example.org","type":"other","primary":true}],"externalId":"ak-1"}),
        )
        .await
        .expect(200);
    assert_eq!(
        authentik.get(&format!("/Users/{alice}")).await.body["name"]["familyName"],
        "B"
    );

    let group = authentik
        .post(
            "/Groups",
            &json!({"schemas":[GROUP],"displayName":"authentik Admins","externalId":"ak-g1"}),
        )
        .await
        .expect(201)
        .id();
    for user in [&alice, &bob] {
        authentik
            .patch(
                &format!("/Groups/{group}"),
                &json!({"schemas":[PATCH_OP],"Operations":[{"op":"add","path":"members","value":[{"value":user}]}]}),
            )
            .await
            .expect(200);
    }
    // It GETs the group to diff members, so GET must return them.
    let read = authentik.get(&format!("/Groups/{group}")).await.expect(200).body;
    assert_eq!(member_ids(&read), sorted(vec![alice.clone(), bob.clone()]));
    authentik
        .patch(
            &format!("/Groups/{group}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"remove","path":"members","value":[{"value":bob}]}]}),
        )
        .await
        .expect(200);
    assert_eq!(
        member_ids(&authentik.get(&format!("/Groups/{group}")).await.body),
        vec![alice.clone()]
    );
    // Rename by path-less replace; on a 409 it falls back to the displayName filter.
    authentik
        .patch(
            &format!("/Groups/{group}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","value":{"displayName":"authentik Ops","externalId":"ak-g1"}}]}),
        )
        .await
        .expect(200);
    let by_name = authentik
        .get(&format!("/Groups?{}", filter("displayName eq \"authentik Ops\"")))
        .await
        .expect(200);
    assert_eq!(by_name.body["Resources"][0]["id"], group.as_str());
    // Deletion is a DELETE.
    authentik.delete(&format!("/Users/{bob}")).await.expect(204);
    authentik.get(&format!("/Users/{bob}")).await.expect(404);
    server.stop().await;
}

#[tokio::test]
async fn jumpcloud_test_connection_and_entra_style_member_removal() {
    let server = TestServer::start().await;
    let jumpcloud = server.client("default");
    // "Test Connection" creates and deletes a test user and group.
    let probe_user = jumpcloud
        .post(
            "/Users",
            &json!({"schemas":[USER],"userName":"jc-test-user@jumpcloud.test","active":true}),
        )
        .await
        .expect(201)
        .id();
    let probe_group = jumpcloud
        .post("/Groups", &json!({"schemas":[GROUP],"displayName":"jc-test-group"}))
        .await
        .expect(201)
        .id();
    jumpcloud.delete(&format!("/Users/{probe_user}")).await.expect(204);
    jumpcloud.delete(&format!("/Groups/{probe_group}")).await.expect(204);

    let mut users = Vec::new();
    for index in 0..3 {
        users.push(
            jumpcloud
                .post(
                    "/Users",
                    &json!({"schemas":[USER],"userName":format!("jc{index}@example.com"),"active":true}),
                )
                .await
                .expect(201)
                .id(),
        );
    }
    let members: Vec<Value> = users.iter().map(|id| json!({"value": id})).collect();
    let group = jumpcloud
        .post(
            "/Groups",
            &json!({"schemas":[GROUP],"displayName":"Sales","members":members}),
        )
        .await
        .expect(201)
        .id();
    // Removal names the members in a value list, without a filter: exactly those go.
    jumpcloud
        .patch(
            &format!("/Groups/{group}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"remove","path":"members","value":[{"value":users[1]}]}]}),
        )
        .await
        .expect(200);
    let read = jumpcloud.get(&format!("/Groups/{group}")).await.body;
    assert_eq!(member_ids(&read), sorted(vec![users[0].clone(), users[2].clone()]));
    server.stop().await;
}

#[tokio::test]
async fn entra_gallery_pagination_and_null_update() {
    let server = TestServer::start().await;
    let entra = server.client("default");
    for index in 0..11 {
        entra
            .post(
                "/Users",
                &json!({"userName":format!("page{index:02}@contoso.com"),"title":"T","active":true}),
            )
            .await
            .expect(201);
    }
    let mut seen = Vec::new();
    for page in 0..3 {
        let answer = entra
            .get(&format!("/Users?startIndex={}&count=5", page * 5 + 1))
            .await
            .expect(200);
        assert_eq!(answer.body["startIndex"], page * 5 + 1);
        assert_eq!(answer.body["totalResults"], 11);
        let resources = answer.body["Resources"].as_array().unwrap();
        assert_eq!(answer.body["itemsPerPage"], resources.len());
        seen.extend(
            resources
                .iter()
                .map(|user| user["userName"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(seen.len(), 11, "pages neither overlap nor skip");
    seen.dedup();
    assert_eq!(seen.len(), 11);

    // Null update: "" then null; both read back as empty.
    let id = find_user(&entra, "page00@contoso.com").await.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","path":"title","value":""}]}),
        )
        .await
        .expect(200);
    assert!(entra.get(&format!("/Users/{id}")).await.body.get("title").is_none());
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"add","path":"title","value":"Back"},{"op":"replace","path":"title","value":null}]}),
        )
        .await
        .expect(200);
    assert!(entra.get(&format!("/Users/{id}")).await.body.get("title").is_none());
    server.stop().await;
}

#[tokio::test]
async fn entra_postman_garbage_and_unquoted_filters() {
    let server = TestServer::start().await;
    let client = server.client("default");
    client
        .post(
            "/Users",
            &json!({"UserName":"OMalley@example.com","Active":"True","name":{"FamilyName":"Employee"},
                "emails":[{"Primary":"true","Value":"omalley@example.com","Type":"work"}]}),
        )
        .await
        .expect(201);
    client.post("/Users", &json!({"active":true})).await.expect(400);
    let junk = client.send(reqwest::Method::POST, "/Users", None).await;
    assert_eq!(junk.status.as_u16(), 400);
    // A misspelled attribute is ignored, not fatal.
    client
        .post("/Users", &json!({"userName":"typo@example.com","displayNmae":"Typo"}))
        .await
        .expect(201);
    for expression in [
        "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
        "userName sw O",
        "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
        "DisplayName eq \"nobody\" or userName eq \"OMALLEY@example.com\"",
    ] {
        let answer = client.get(&format!("/Users?{}", filter(expression))).await.expect(200);
        assert!(
            answer.body["totalResults"].as_u64().unwrap() >= 1,
            "{expression}: {}",
            answer.body
        );
    }
    // A scalar where the member list is expected names nothing: the group is made without it.
    let group = client
        .post("/Groups", &json!({"displayName":"Garbage","members":"string id 1"}))
        .await
        .expect(201);
    assert!(group.body.get("members").is_none());
    server.stop().await;
}

/// The manager a user's enterprise extension names, as GET returns it.
async fn manager_of(client: &Client, id: &str) -> Value {
    client.get(&format!("/Users/{id}")).await.expect(200).body[ENTERPRISE]["manager"].clone()
}

/// Hardening issue, must-fix 10: Entra sends the enterprise `manager` as a bare id, as an
/// object, and as a one-element list of `{"$ref", "value"}` (on POST and in PATCH values);
/// every shape sets the same manager, read back as `{"value", "$ref", "displayName"}`.
#[tokio::test]
async fn entra_manager_in_every_shape_it_sends() {
    let server = TestServer::start().await;
    let entra = server.client("default");
    let mut managers = Vec::new();
    for name in ["boss-one", "boss-two"] {
        let body = json!({"schemas":[USER],"userName":format!("{name}@contoso.com"),"displayName":name,"active":true});
        managers.push(entra.post("/Users", &body).await.expect(201).id());
    }
    let reference = |id: &str| format!("{}/Users/{id}", server.base);

    // POST with the manager as a one-element list carrying `$ref`.
    let id = entra
        .post(
            "/Users",
            &json!({"schemas":[USER, ENTERPRISE],"userName":"report@contoso.com","active":true,
                ENTERPRISE:{"department":"Ops","manager":[{"$ref":reference(&managers[0]),"value":managers[0]}]}}),
        )
        .await
        .expect(201)
        .id();
    let manager = manager_of(&entra, &id).await;
    assert_eq!(manager["value"], managers[0].as_str());
    assert_eq!(manager["$ref"], reference(&managers[0]));
    assert_eq!(manager["displayName"], "boss-one");

    let path = format!("{ENTERPRISE}:manager");
    // Each operation names the other manager than the one before, in another shape.
    let shapes = [
        ("Replace", json!(managers[1]), &managers[1]),
        ("Add", json!([{"$ref": null, "value": managers[0]}]), &managers[0]),
        ("Replace", json!({"value": managers[1]}), &managers[1]),
        ("Replace", json!([{"$ref": reference(&managers[0])}]), &managers[0]),
        ("Replace", json!({"$ref": reference(&managers[1])}), &managers[1]),
    ];
    for (op, value, expected) in shapes {
        entra
            .patch(
                &format!("/Users/{id}"),
                &json!({"schemas":[PATCH_OP],"Operations":[{"op":op,"path":path,"value":value}]}),
            )
            .await
            .expect(200);
        assert_eq!(
            manager_of(&entra, &id).await["value"],
            expected.as_str(),
            "{op} {value}"
        );
    }
    // A path-less value with the manager as a list, and a PUT with it as an object.
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"replace","value":{path.as_str(): [{"value": managers[0]}]}}]}),
        )
        .await
        .expect(200);
    assert_eq!(manager_of(&entra, &id).await["value"], managers[0].as_str());
    let mut full = entra.get(&format!("/Users/{id}")).await.body;
    full[ENTERPRISE]["manager"] = json!({"value": managers[1]});
    entra.put(&format!("/Users/{id}"), &full).await.expect(200);
    assert_eq!(manager_of(&entra, &id).await["value"], managers[1].as_str());
    assert_eq!(
        entra.get(&format!("/Users/{id}")).await.body[ENTERPRISE]["department"],
        "Ops"
    );

    // The gallery's remove: a replace with an empty string.
    entra
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas":[PATCH_OP],"Operations":[{"op":"Replace","path":path,"value":""}]}),
        )
        .await
        .expect(200);
    assert_eq!(manager_of(&entra, &id).await, Value::Null);
    server.stop().await;
}

/// Hardening issue, must-fix 10: authentik's manager model may carry the manager only as a
/// `$ref` URL (with `value` and `displayName` null); the id at the end of the URL is kept,
/// instead of the manager being silently dropped.
#[tokio::test]
async fn authentik_manager_named_by_its_ref() {
    let server = TestServer::start().await;
    let authentik = server.client("default");
    let boss = authentik
        .post("/Users", &json!({"schemas":[USER],"userName":"boss","active":true}))
        .await
        .expect(201)
        .id();
    let body = json!({"schemas":[USER, ENTERPRISE],"userName":"alice","active":true,
        ENTERPRISE:{"manager":{"value":null,"$ref":format!("{}/Users/{boss}", server.base),"displayName":null}}});
    let alice = authentik.post("/Users", &body).await.expect(201).id();
    assert_eq!(manager_of(&authentik, &alice).await["value"], boss.as_str());
    // Updates are PUTs of the whole user, in the same shape.
    authentik.put(&format!("/Users/{alice}"), &body).await.expect(200);
    assert_eq!(manager_of(&authentik, &alice).await["value"], boss.as_str());
    server.stop().await;
}

/// Hardening issue, must-fix 10: OneLogin's SCIM 1.1 enterprise template sends the SCIM 1.1
/// URNs, one email as an object and the manager's id as `managerId`; the department and the
/// manager it carries are kept, not dropped as unknown attributes.
#[tokio::test]
async fn onelogin_scim_1_1_enterprise_template() {
    let server = TestServer::start().await;
    let onelogin = server.client("default");
    let boss = onelogin
        .post("/Users", &json!({"userName":"boss@example.com","active":true}))
        .await
        .expect(201)
        .id();
    let id = onelogin
        .post(
            "/Users",
            &json!({"schemas":["urn:scim:schemas:core:1.0","urn:scim:schemas:extension:enterprise:1.0"],
                "userName":"ada@example.com","name":{"familyName":"Kim","givenName":"Ada","formatted":"Ada Kim"},
                "emails":{"value":"ada@example.com","type":"work","primary":true},"title":"Engineer",
                "urn:scim:schemas:extension:enterprise:1.0":{"department":"R&D","manager":{"managerId":boss,"displayName":"Boss"}}}),
        )
        .await
        .expect(201)
        .id();
    let user = onelogin.get(&format!("/Users/{id}")).await.expect(200).body;
    assert_eq!(user["emails"][0]["value"], "ada@example.com");
    assert_eq!(user[ENTERPRISE]["department"], "R&D");
    assert_eq!(user[ENTERPRISE]["manager"]["value"], boss.as_str());
    server.stop().await;
}
