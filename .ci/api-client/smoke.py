"""Drives a running `idpsync serve` with the typed client generated from the committed OpenAPI
document: a binding, a role binding and the roles it gives, the directory, the change stream and an acknowledgement, timelines and
intervals, an audit and the leavers' report, erasure, and errors.

Every answer is parsed into the generated models, and every model is checked for fields the
document does not describe (the generated models keep those in `additional_properties`), so a
type whose JSON drifts from its schema fails here.

Usage: smoke.py ORIGIN TENANT ADMIN_TOKEN SCIM_TOKEN
"""

import json
import sys

import attrs
import httpx

from idpsync_client import AuthenticatedClient, Client
from idpsync_client.api.audit import get_leavers_report, get_user_audit
from idpsync_client.api.bindings import delete_binding, get_binding, list_bindings, put_binding
from idpsync_client.api.changes import acknowledge_change
from idpsync_client.api.directory import get_group, get_user, list_group_members, list_users
from idpsync_client.api.document import get_open_api_document
from idpsync_client.api.erasure import erase_user
from idpsync_client.api.history import get_membership_intervals, get_user_timeline
from idpsync_client.api.integrations import list_integrations
from idpsync_client.api.roles import list_roles
from idpsync_client.api.tenants import get_tenant
from idpsync_client.models import (
    AccessChangeRow,
    AckAnswer,
    AckBody,
    Binding,
    BindingBody,
    BindingList,
    BindingWritten,
    EraseAnswer,
    Error,
    GroupDetail,
    IntegrationList,
    Intervals,
    LeaversReport,
    LoggedEventRow,
    RoleList,
    TenantSummary,
    Timeline,
    UserAudit,
    UserDetail,
)
from idpsync_client.types import UNSET

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def described(value, path="answer"):
    """Fails if `value`, or anything in it, has a field the document does not describe."""
    if attrs.has(type(value)):
        extra = getattr(value, "additional_properties", {})
        assert not extra, f"{path}: fields the document does not describe: {sorted(extra)}"
        for field in attrs.fields(type(value)):
            if field.name != "additional_properties":
                described(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            described(item, f"{path}[{index}]")


def call(endpoint, status, model, **kwargs):
    """Calls `endpoint`, expects `status` and an answer of `model` (None: no body)."""
    response = endpoint.sync_detailed(**kwargs)
    assert response.status_code == status, (
        f"{endpoint.__name__}: expected {status}, got {response.status_code}: {response.content!r}"
    )
    if model is None:
        return None
    assert isinstance(response.parsed, model), (
        f"{endpoint.__name__}: expected a {model.__name__}, got {type(response.parsed).__name__}"
    )
    described(response.parsed, endpoint.__name__.rsplit(".", 1)[-1])
    return response.parsed


def scim(origin, token):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    return httpx.Client(base_url=f"{origin}/scim/v2", headers=headers, timeout=10)


def first_revocation(api, tenant, start):
    """The first `access.revoked` item of the change stream from record `start`."""
    item = {}
    with api.get_httpx_client().stream(
        "GET", f"/tenants/{tenant}/changes", params={"from": start}, timeout=10
    ) as stream:
        assert stream.status_code == 200, stream.status_code
        for line in stream.iter_lines():
            if line == "":
                if item.get("event") == "event":
                    described(LoggedEventRow.from_dict(json.loads(item["data"])), "event item")
                if item.get("event") == "access.revoked":
                    return item["id"], AccessChangeRow.from_dict(json.loads(item["data"]))
                item = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                item[field] = value.removeprefix(" ")
    raise AssertionError("the change stream ended without an access.revoked item")


def main(origin, tenant, admin_token, scim_token):
    api = AuthenticatedClient(
        base_url=f"{origin}/api/v1", token=admin_token, raise_on_unexpected_status=True
    )
    people = scim(origin, scim_token)

    def scim_create(path, body):
        answer = people.post(path, json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    alice = scim_create("/Users", {"userName": "alice@acme.test", "active": True})
    bob = scim_create("/Users", {"userName": "bob@acme.test", "active": True})
    eng = scim_create("/Groups", {"displayName": "eng", "members": [{"value": alice}]})

    summary = call(get_tenant, 200, TenantSummary, tenant=tenant, client=api)
    assert (summary.users, summary.groups, summary.bindings) == (2, 1, 0), summary

    written = call(
        put_binding, 200, BindingWritten, tenant=tenant, kind="route", id="r-1",
        body=BindingBody(groups=[eng]), client=api,
    )
    assert written.changed and written.groups == [eng], written
    listed = call(list_bindings, 200, BindingList, tenant=tenant, client=api)
    assert [(b.kind, b.id) for b in listed.items] == [("route", "r-1")], listed
    got = call(get_binding, 200, Binding, tenant=tenant, kind="route", id="r-1", client=api)
    assert got.groups == [eng] and got.sources is UNSET, got

    # A role binding: eng's members are Admins, everyone else has the default role.
    role = call(
        put_binding, 200, BindingWritten, tenant=tenant, kind="role", id="eng-admins",
        body=BindingBody(role="Admin", priority=10, groups=[eng]), client=api,
    )
    assert (role.kind, role.role, role.priority, role.groups) == ("role", "Admin", 10, [eng]), role
    roles = call(list_roles, 200, RoleList, tenant=tenant, client=api)
    assert roles.enabled and roles.default_role == "User", roles
    assert {(r.user.user_name, r.role) for r in roles.items} == {
        ("alice@acme.test", "Admin"), ("bob@acme.test", "User")
    }, roles
    admins = call(list_roles, 200, RoleList, tenant=tenant, admins=True, client=api)
    assert [(r.user.id, r.binding, r.group.id) for r in admins.items] == [(alice, "eng-admins", eng)], admins

    page = list_users.sync(tenant=tenant, limit=1, client=api)
    described(page, "list_users")
    assert len(page.items) == 1 and isinstance(page.next_, str), page
    rest = list_users.sync(tenant=tenant, limit=1, after=page.next_, client=api)
    names = {page.items[0].user_name, rest.items[0].user_name}
    assert names == {"alice@acme.test", "bob@acme.test"}, names

    detail = call(get_user, 200, UserDetail, tenant=tenant, user="alice@acme.test", client=api)
    assert detail.id == alice and detail.active, detail
    assert [(g.id, g.direct) for g in detail.groups] == [(eng, True)], detail.groups
    assert [(a.resource.kind, a.resource.id, a.via.id) for a in detail.access] == [
        ("route", "r-1", eng)
    ], detail.access
    group = call(get_group, 200, GroupDetail, tenant=tenant, group="eng", client=api)
    assert group.id == eng and group.members == 1, group
    members = list_group_members.sync(tenant=tenant, group=eng, client=api)
    described(members, "list_group_members")
    assert [(m.id, m.type_) for m in members.items] == [(alice, "User")], members

    # Alice leaves: her access is revoked on the change stream, and the consumer says it
    # applied the revocation.
    head = call(get_tenant, 200, TenantSummary, tenant=tenant, client=api).seq
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    answer = people.patch(f"/Users/{alice}", json=patch)
    assert answer.status_code == 200, answer.text
    change_id, revoked = first_revocation(api, tenant, head + 1)
    described(revoked, "access.revoked item")
    assert revoked.direction == "revoked" and revoked.user.id == alice, revoked
    ack = call(acknowledge_change, 200, AckAnswer, tenant=tenant, body=AckBody(id=change_id), client=api)
    assert ack.recorded and ack.user == alice, ack
    again = call(acknowledge_change, 200, AckAnswer, tenant=tenant, body=AckBody(id=change_id), client=api)
    assert not again.recorded, again

    timeline = call(get_user_timeline, 200, Timeline, tenant=tenant, user=alice, client=api)
    kinds = [event.event.type_ for event in timeline.items]
    assert kinds[0] == "user.provisioned" and "user.deactivated" in kinds, kinds
    intervals = call(
        get_membership_intervals, 200, Intervals, tenant=tenant, group="eng", member=alice, client=api
    )
    assert len(intervals.items) == 1 and intervals.items[0].until is None, intervals

    audit = call(get_user_audit, 200, UserAudit, tenant=tenant, user=alice, client=api)
    assert audit.standing == "inactive" and audit.steps, audit
    assert audit.offboarding.acknowledged == 1, audit.offboarding
    leavers = call(get_leavers_report, 200, LeaversReport, tenant=tenant, since="2000-01-01", client=api)
    assert leavers.count == 1 and leavers.leavers[0].user == alice, leavers
    assert [(c.user, c.gained) for c in leavers.admin_changes] == [(alice, True), (alice, False)], leavers

    integrations = call(list_integrations, 200, IntegrationList, tenant=tenant, client=api)
    assert integrations.items == [], integrations

    erased = call(erase_user, 200, EraseAnswer, tenant=tenant, user=bob, client=api)
    assert erased.erased and erased.changed, erased

    # Errors: each in the documented format, with its code.
    missing = call(get_user, 404, Error, tenant=tenant, user="nobody@acme.test", client=api)
    assert missing.error.code == "not_found", missing
    wrong_shape = call(
        put_binding, 422, Error, tenant=tenant, kind="policy", id="p-1",
        body=BindingBody(groups=[eng]), client=api,
    )
    assert wrong_shape.error.code == "binding_shape", wrong_shape
    stranger = AuthenticatedClient(base_url=f"{origin}/api/v1", token="not-a-token")
    refused = call(get_tenant, 401, Error, tenant=tenant, client=stranger)
    assert refused.error.code == "unauthorized", refused

    call(delete_binding, 204, None, tenant=tenant, kind="route", id="r-1", client=api)
    call(get_binding, 404, Error, tenant=tenant, kind="route", id="r-1", client=api)

    document = get_open_api_document.sync_detailed(client=Client(base_url=f"{origin}/api/v1"))
    assert document.status_code == 200, document.status_code

    print("typed client smoke test: ok")


if __name__ == "__main__":
    main(*sys.argv[1:5])
