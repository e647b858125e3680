//! The operator documentation, followed as written against the real binary: every page's
//! runnable shell blocks and configuration blocks (`walkthrough` says how they are marked and
//! what the host stands in for), the Entra ID guide against a replay of Entra's own requests in
//! both PATCH dialects, the backup guide as a backup and a restore, and the example
//! configuration file.
//!
//! A page whose blocks need more than a running service (the Entra guide needs Entra's
//! requests between its steps, the backup guide a change between backup and restore) has a
//! test of its own here, listed in [`FOLLOWED_ALONE`]; every other page is followed by
//! [`every_runnable_block_of_the_docs_runs`].

mod walkthrough;

use reqwest::StatusCode;
use serde_json::{Value, json};
use walkthrough::{Block, Host, Page, load_configuration, repository};

/// Pages with a test of their own below.
const FOLLOWED_ALONE: [&str; 2] = ["docs/scim/entra.md", "docs/operations/backup-and-restore.md"];

#[test]
fn every_runnable_block_of_the_docs_runs() {
    let mut followed = 0;
    for page in Page::all() {
        if FOLLOWED_ALONE.contains(&page.path.as_str()) || page.runnable().next().is_none() {
            continue;
        }
        let host = Host::new();
        host.seed_acme();
        host.start();
        for block in page.runnable() {
            host.run(&page, block);
        }
        followed += 1;
    }
    assert!(followed >= 5, "only {followed} pages had runnable blocks");
}

#[test]
fn every_configuration_block_of_the_docs_loads() {
    let host = Host::new();
    let mut loaded = 0;
    for page in Page::all() {
        for block in page.configurations() {
            if let Err(output) = load_configuration(&host, &block.text) {
                panic!(
                    "{}:{} (under \"{}\") does not load:\n{}\n{output}",
                    page.path, block.line, block.heading, block.text
                );
            }
            loaded += 1;
        }
    }
    assert!(loaded >= 8, "only {loaded} configuration blocks were checked");
}

/// The example configuration sets every setting with a fixed default to that default (so
/// that its comments tell the truth), and each commented-out `[[tenant.integration]]` block,
/// uncommented, loads.
#[test]
fn the_example_configuration_is_the_defaults_and_each_integration_loads() {
    use idpsync::config::Config;
    let text = std::fs::read_to_string(repository().join("examples/idpsync.toml")).unwrap();
    let config = Config::parse(&text).unwrap_or_else(|error| panic!("examples/idpsync.toml: {error}"));
    let defaults = Config::default();
    assert_eq!(config.tenant_settings(), defaults.tenant_settings());
    assert_eq!(config.http.limits(), defaults.http.limits());
    assert_eq!(config.checkpoints.policy(), defaults.checkpoints.policy());
    let (scim, scim_defaults) = (config.scim.settings(), defaults.scim.settings());
    assert_eq!(
        (
            scim.body_len_max,
            scim.bulk_operations_max,
            scim.bulk_payload_len_max,
            scim.filter_results_max,
            scim.page_size_default,
            scim.scan_queue_wait,
            scim.scan_resources_max,
            scim.scan_time_max,
        ),
        (
            scim_defaults.body_len_max,
            scim_defaults.bulk_operations_max,
            scim_defaults.bulk_payload_len_max,
            scim_defaults.filter_results_max,
            scim_defaults.page_size_default,
            scim_defaults.scan_queue_wait,
            scim_defaults.scan_resources_max,
            scim_defaults.scan_time_max,
        )
    );

    let host = Host::new();
    let mut providers = Vec::new();
    for integration in commented_integrations(&text) {
        let provider = integration
            .lines()
            .find_map(|line| line.strip_prefix("provider = \""))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("an integration without a provider:\n{integration}"))
            .to_owned();
        let configuration = format!("{text}\n{integration}");
        if let Err(output) = load_configuration(&host, &configuration) {
            panic!("the `{provider}` integration of examples/idpsync.toml does not load:\n{integration}\n{output}");
        }
        providers.push(provider);
    }
    providers.sort();
    assert_eq!(
        providers,
        [
            "auth0",
            "authentik",
            "entra",
            "google",
            "jumpcloud",
            "keycloak",
            "okta",
            "zitadel"
        ],
        "one commented-out integration per vendor"
    );
}

/// Each commented-out `# [[tenant.integration]]` block of `text`, uncommented: its lines up to
/// the next blank one, with one `# ` taken off each (lines commented twice stay comments).
fn commented_integrations(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        if line.trim_end() != "# [[tenant.integration]]" {
            continue;
        }
        let block: Vec<&str> = lines[start..]
            .iter()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.strip_prefix("# ").unwrap_or(line.trim_start_matches('#')))
            .collect();
        blocks.push(block.join("\n") + "\n");
    }
    blocks
}

/// Which PATCH requests Entra sends: its default, or RFC 7644's with `?aadOptscim062020` in
/// the Tenant URL.
#[derive(Clone, Copy, Debug)]
enum Dialect {
    Default,
    Scim062020,
}

/// Entra's provisioning service as the IdP-Sync server meets it: the request shapes of
/// `scim-clients.md` §1.1, sent to the Tenant URL the guide has the operator paste.
struct Entra {
    http: reqwest::Client,
    tenant_url: String,
    token: String,
    dialect: Dialect,
}

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// An answer of the server: its status and its JSON body (`null` when it has none).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// The body, once the status is the one Entra expects.
    fn expect(self, status: StatusCode, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self.body
    }
}

impl Entra {
    /// A request to `<Tenant URL><path>`. With the flag, the flag stays in the query of every
    /// request: the worst case for a server that might refuse parameters it does not know.
    fn request(&self, method: reqwest::Method, path: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.tenant_url)).unwrap();
        if let Dialect::Scim062020 = self.dialect {
            url.set_query(Some("aadOptscim062020"));
        }
        url.query_pairs_mut().extend_pairs(query);
        self.http.request(method, url).bearer_auth(&self.token)
    }

    async fn answer(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        Entra::answer(self.request(reqwest::Method::GET, path, query)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        Entra::answer(self.request(reqwest::Method::DELETE, path, &[])).await
    }

    /// A POST or PATCH with a SCIM body.
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let request = self
            .request(method, path, &[])
            .header("content-type", "application/scim+json")
            .body(body.to_string());
        Entra::answer(request).await
    }

    /// The matching GET: a filter on one attribute, answered by a list.
    async fn find(&self, endpoint: &str, filter: String) -> Value {
        let mut query = vec![("filter", filter.as_str())];
        if endpoint == "/Groups" {
            query.insert(0, ("excludedAttributes", "members"));
        }
        let what = format!("GET {endpoint} ({:?})", self.dialect);
        self.get(endpoint, &query).await.expect(StatusCode::OK, &what)
    }

    /// Test Connection: a random GUID in the matching attribute, for a user and a group.
    async fn test_connection(&self) {
        for (endpoint, filter) in [
            ("/Users", "externalId eq \"3d6e2b1a-9c8f-4e7d-a6b5-c4d3e2f1a0b9\""),
            ("/Users", "userName eq \"3d6e2b1a-9c8f-4e7d-a6b5-c4d3e2f1a0b9\""),
            ("/Groups", "displayName eq \"3d6e2b1a-9c8f-4e7d-a6b5-c4d3e2f1a0b9\""),
        ] {
            let answer = self.find(endpoint, filter.to_owned()).await;
            assert_eq!(answer["totalResults"], 0, "{answer}");
            assert_eq!(answer["Resources"], json!([]), "{answer}");
        }
    }

    /// A joiner: matched by its objectId as externalId (step 4 of the guide), not found,
    /// created with Entra's extras (client-sent meta, `roles: []`, an empty enterprise part).
    async fn provision_user(&self, user_name: &str, object_id: &str, given: &str, family: &str) -> String {
        let found = self.find("/Users", format!("externalId eq \"{object_id}\"")).await;
        assert_eq!(found["totalResults"], 0, "{found}");
        let found = self.find("/Users", format!("userName eq \"{user_name}\"")).await;
        assert_eq!(found["totalResults"], 0, "{found}");
        let user = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "externalId": object_id,
            "userName": user_name,
            "active": true,
            "displayName": format!("{given} {family}"),
            "emails": [{"primary": true, "type": "work", "value": user_name}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": format!("{given} {family}"), "familyName": family, "givenName": given},
            "roles": [],
        });
        let created = self
            .send(reqwest::Method::POST, "/Users", user)
            .await
            .expect(StatusCode::CREATED, "POST /Users");
        created["id"].as_str().unwrap().to_owned()
    }

    /// A group with Microsoft's own schema URN, matched by displayName, then its members in one
    /// PATCH.
    async fn provision_group(&self, display_name: &str, object_id: &str, members: &[&str]) -> String {
        let found = self.find("/Groups", format!("displayName eq \"{display_name}\"")).await;
        assert_eq!(found["totalResults"], 0, "{found}");
        let group = json!({
            "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": object_id,
            "displayName": display_name,
            "meta": {"resourceType": "Group"},
        });
        let created = self
            .send(reqwest::Method::POST, "/Groups", group)
            .await
            .expect(StatusCode::CREATED, "POST /Groups");
        let id = created["id"].as_str().unwrap().to_owned();
        let values: Vec<Value> = members
            .iter()
            .map(|member| json!({"$ref": null, "value": member}))
            .collect();
        let op = match self.dialect {
            Dialect::Default => "Add",
            Dialect::Scim062020 => "add",
        };
        self.patch(
            &format!("/Groups/{id}"),
            json!([{"op": op, "path": "members", "value": values}]),
        )
        .await;
        id
    }

    /// A PATCH; Entra takes 200 with the resource and 204 alike.
    async fn patch(&self, path: &str, operations: Value) {
        let body = json!({"schemas": [PATCH_SCHEMA], "Operations": operations});
        let answer = self.send(reqwest::Method::PATCH, path, body).await;
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::NO_CONTENT,
            "PATCH {path} ({:?}): {} {}",
            self.dialect,
            answer.status,
            answer.body
        );
    }

    /// A mover: the name and the employee number change.
    async fn update(&self, id: &str) {
        let operations = match self.dialect {
            Dialect::Default => json!([
                {"op": "Replace", "path": "name.familyName", "value": "Hopper-Murray"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "1906"},
            ]),
            Dialect::Scim062020 => json!([
                {"op": "replace", "value": {"name.familyName": "Hopper-Murray",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "1906"}},
            ]),
        };
        self.patch(&format!("/Users/{id}"), operations).await;
    }

    /// A leaver: out of the group, then deactivated, each in the dialect's own shape.
    async fn deprovision(&self, user: &str, group: &str) {
        let (removal, deactivation) = match self.dialect {
            Dialect::Default => (
                json!([{"op": "Remove", "path": "members", "value": [{"value": user}]}]),
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            ),
            Dialect::Scim062020 => (
                json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]),
                json!([{"op": "replace", "path": "active", "value": false}]),
            ),
        };
        self.patch(&format!("/Groups/{group}"), removal).await;
        self.patch(&format!("/Users/{user}"), deactivation).await;
    }
}

/// The Entra guide, followed step by step in one dialect, with Entra's requests where Entra
/// acts: Test Connection between the token and the provisioning, the first cycle before the
/// checks, the leaver before its section.
async fn follow_the_entra_guide(dialect: Dialect) {
    let page = Page::read("docs/scim/entra.md");
    let host = Host::new();
    host.start();
    let mut blocks = page.runnable().peekable();
    let mut run_until = |heading: &str| -> Vec<String> {
        let mut outputs = Vec::new();
        while let Some(block) = blocks.next_if(|block: &&Block| !block.heading.contains(heading)) {
            outputs.push(host.run(&page, block));
        }
        assert!(
            blocks.peek().is_some(),
            "docs/scim/entra.md has no runnable block under \"{heading}\""
        );
        outputs
    };

    // Steps 1 and 2: the token and the checks of the endpoint.
    let outputs = run_until("Check that it worked");
    assert!(
        outputs[0].trim().starts_with("idps_"),
        "step 1 prints the token: {outputs:?}"
    );
    let entra = Entra {
        http: reqwest::Client::new(),
        tenant_url: format!("{}/scim/v2", host.origin()),
        token: host.variable("SCIM_TOKEN"),
        dialect,
    };
    entra.test_connection().await;

    // Step 5: the first cycle.
    let ada = entra
        .provision_user(
            "ada.lovelace@contoso.com",
            "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "Ada",
            "Lovelace",
        )
        .await;
    let grace = entra
        .provision_user(
            "grace.hopper@contoso.com",
            "5c3b7e1d-2f4a-4c6b-9d8e-1a2b3c4d5e6f",
            "Grace",
            "Hopper",
        )
        .await;
    let group = entra
        .provision_group("VPN Users", "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", &[&ada, &grace])
        .await;
    entra.update(&grace).await;

    // Step 6: the checks see what Entra sent; the group gets a binding.
    let outputs = run_until("What a leaver looks like");
    let users = &outputs[0];
    for expected in ["ada.lovelace@contoso.com", "grace.hopper@contoso.com", "VPN Users"] {
        assert!(users.contains(expected), "step 6 should show {expected}: {users}");
    }
    let grace_read: Value = serde_json::from_str(&outputs[1]).unwrap();
    assert_eq!(
        grace_read["Resources"][0]["externalId"],
        "5c3b7e1d-2f4a-4c6b-9d8e-1a2b3c4d5e6f"
    );
    assert_eq!(grace_read["Resources"][0]["name"]["familyName"], "Hopper-Murray");
    assert_eq!(grace_read["Resources"][0][ENTERPRISE_SCHEMA]["employeeNumber"], "1906");

    // Step 7: Ada leaves.
    entra.deprovision(&ada, &group).await;
    let outputs: Vec<String> = blocks.map(|block| host.run(&page, block)).collect();
    let mut answers = serde_json::Deserializer::from_str(&outputs[0]).into_iter::<Value>();
    let leaver = answers.next().unwrap().unwrap();
    assert_eq!(leaver["active"], false, "{leaver}");
    let audit = &outputs[0][answers.byte_offset()..];
    for expected in [
        "DEACTIVATED",
        "token entra-prod",
        "access REVOKED policy/vpn-access (source) via VPN Users",
    ] {
        assert!(audit.contains(expected), "the audit shows {expected:?}: {audit}");
    }
    let read = entra
        .get(&format!("/Groups/{group}"), &[])
        .await
        .expect(StatusCode::OK, "GET the group");
    let members: Vec<&str> = read["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, [grace.as_str()], "{dialect:?}: {read}");

    // The hard delete, 30 days later.
    entra
        .delete(&format!("/Users/{ada}"))
        .await
        .expect(StatusCode::NO_CONTENT, "DELETE the leaver");
    entra
        .get(&format!("/Users/{ada}"), &[])
        .await
        .expect(StatusCode::NOT_FOUND, "GET the deleted leaver");
    assert!(!host.service_log().contains("ERROR"), "{}", host.service_log());
}

#[tokio::test]
async fn the_entra_guide_against_entra_in_its_default_dialect() {
    follow_the_entra_guide(Dialect::Default).await;
}

#[tokio::test]
async fn the_entra_guide_against_entra_with_aad_opt_scim_062020() {
    follow_the_entra_guide(Dialect::Scim062020).await;
}

/// The backup guide: a backup of the stopped service, checked on a scratch copy; a joiner
/// after it; then the restore, which brings back exactly the backed-up users and takes the
/// joiner back.
#[tokio::test]
async fn the_backup_guide_backs_up_and_restores() {
    let page = Page::read("docs/operations/backup-and-restore.md");
    let host = Host::new();
    host.seed_acme();
    host.start();
    let users_now = |host: &Host| {
        let output = host.shell(
            "curl -fsS -H \"Authorization: Bearer $ADMIN_TOKEN\" 'http://127.0.0.1:8080/api/v1/tenants/acme/users?limit=1000'",
        );
        assert!(output.status.success(), "{}", walkthrough::describe(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let mut joined_after_backup = false;
    let mut verified = 0;
    for block in page.runnable() {
        if block.heading == "Restore" && !joined_after_backup {
            let created = host.shell(
                "SCIM_TOKEN=$(idpsync token create --tenant acme --name later | tail -n 1)\n\
                 curl -fsS -o /dev/null -H \"Authorization: Bearer $SCIM_TOKEN\" -H 'Content-Type: application/scim+json' \
                 -d '{\"userName\": \"after.the.backup@example.com\"}' http://127.0.0.1:8080/scim/v2/Users",
            );
            assert!(created.status.success(), "{}", walkthrough::describe(&created));
            assert!(users_now(&host).contains("after.the.backup@example.com"));
            joined_after_backup = true;
        }
        let output = host.run(&page, block);
        if block.text.contains("log verify") {
            assert!(
                output.contains("tenant acme: ok,"),
                "log verify reports the tenant ok: {output}"
            );
            verified += 1;
        }
    }
    assert!(joined_after_backup, "the guide has a section \"Restore\"");
    assert_eq!(verified, 2, "the guide verifies the backup and the restored directory");
    assert!(host.serving(), "the guide ends with the service running");
    let users = users_now(&host);
    assert!(users.contains("@example.com"), "the seeded users are back: {users}");
    assert!(
        !users.contains("after.the.backup@example.com"),
        "the restore took back the later joiner: {users}"
    );
}
