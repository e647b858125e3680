"""Helpers of the SCIM load run (scim.sh), with the Python standard library only.

  scim_load.py pick BASE TOKEN               -> prints "<id> <userName>" of a user mid-list
  scim_load.py patch-members BASE TOKEN N    -> times N PATCHes adding (then removing) 1,000
                                                members of one group; prints median and spread
  scim_load.py entra-flow BASE TOKEN USERS W -> Entra's create -> filter -> PATCH members ->
                                                PATCH active=false for USERS users on W workers
  scim_load.py count BASE TOKEN              -> prints totalResults of /Users and /Groups
"""

import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse
import uuid


class Scim:
    """One keep-alive connection."""

    def __init__(self, base, token):
        url = urllib.parse.urlparse(base)
        self.prefix = url.path
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    def call(self, method, path, body=None):
        payload = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, self.prefix + path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)


def quoted_filter(expression):
    return "filter=" + urllib.parse.quote_plus(expression)


def pick(base, token):
    scim = Scim(base, token)
    status, page = scim.call("GET", "/Users?startIndex=50000&count=1")
    assert status == 200, page
    if not page["Resources"]:
        status, page = scim.call("GET", "/Users?count=1")
    user = page["Resources"][0]
    print(user["id"], user["userName"])


def patch_members(base, token, rounds):
    scim = Scim(base, token)
    status, page = scim.call("GET", "/Users?startIndex=1&count=1000&attributes=id")
    assert status == 200 and len(page["Resources"]) == 1000, status
    members = [{"value": user["id"]} for user in page["Resources"]]
    status, group = scim.call("POST", "/Groups", {"displayName": f"load-{uuid.uuid4()}"})
    assert status == 201, group
    add = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "add", "path": "members", "value": members}]}
    remove = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "remove", "path": "members", "value": members}]}
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        status, _ = scim.call("PATCH", f"/Groups/{group['id']}", add)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
        status, _ = scim.call("PATCH", f"/Groups/{group['id']}", remove)
        assert status == 200, status
    status, read = scim.call("GET", f"/Groups/{group['id']}")
    assert status == 200 and "members" not in read, "the group ends empty"
    timings.sort()
    print(f"PATCH +1000 members: median {statistics.median(timings):.1f} ms, "
          f"min {timings[0]:.1f}, p90 {timings[int(len(timings) * 0.9) - 1]:.1f}, max {timings[-1]:.1f} ms "
          f"({rounds} rounds)")


def entra_flow(base, token, users, workers):
    setup = Scim(base, token)
    status, group = setup.call("POST", "/Groups", {"displayName": f"entra-flow-{uuid.uuid4()}"})
    assert status == 201, group
    group_id = group["id"]
    errors = []
    created = []
    lock = threading.Lock()
    tag = uuid.uuid4().hex[:8]

    def worker(index):
        scim = Scim(base, token)
        for number in range(index, users, workers):
            name = f"entra-{tag}-{number}@contoso.com"
            match = "/Users?" + quoted_filter('userName eq "%s"' % name)
            steps = [
                ("GET", match, None, 200),
                ("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "externalId": str(uuid.uuid4()), "userName": name, "active": True,
                                    "emails": [{"primary": True, "type": "work", "value": name}],
                                    "meta": {"resourceType": "User"}, "roles": []}, 201),
            ]
            user_id = None
            for method, path, body, expected in steps:
                status, answer = scim.call(method, path, body)
                if status != expected:
                    with lock:
                        errors.append((method, path, status, answer))
                    break
                if method == "POST":
                    user_id = answer["id"]
            if user_id is None:
                continue
            follow = [
                ("GET", match, None),
                ("PATCH", f"/Groups/{group_id}", {"Operations": [
                    {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user_id}]}]}),
                ("PATCH", f"/Users/{user_id}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
            ]
            for method, path, body in follow:
                status, answer = scim.call(method, path, body)
                if status not in (200, 204) or (method == "GET" and answer["totalResults"] != 1):
                    with lock:
                        errors.append((method, path, status, answer))
                    break
            else:
                with lock:
                    created.append(user_id)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # State check through GET: every user is in the group and inactive.
    status, read = setup.call("GET", f"/Groups/{group_id}")
    in_group = {member["value"] for member in read.get("members", [])}
    missing = [user for user in created if user not in in_group]
    still_active = 0
    for user_id in created:
        status, user = setup.call("GET", f"/Users/{user_id}")
        still_active += status != 200 or user["active"] is not False
    print(f"Entra flow: {users} users, {len(created)} complete, {len(errors)} errors, "
          f"{len(missing)} missing from the group, {still_active} not deactivated, "
          f"{elapsed:.1f} s ({users * 5 / elapsed:.0f} requests/s)")
    for error in errors[:5]:
        print("  error:", error)
    if errors or missing or still_active or len(created) != users:
        sys.exit(1)


def count(base, token):
    scim = Scim(base, token)
    _, users = scim.call("GET", "/Users?count=0")
    _, groups = scim.call("GET", "/Groups?count=0")
    print(users["totalResults"], groups["totalResults"])


if __name__ == "__main__":
    command, base, token = sys.argv[1:4]
    if command == "pick":
        pick(base, token)
    elif command == "patch-members":
        patch_members(base, token, int(sys.argv[4]))
    elif command == "entra-flow":
        entra_flow(base, token, int(sys.argv[4]), int(sys.argv[5]))
    elif command == "count":
        count(base, token)
    else:
        sys.exit(f"unknown command {command}")
