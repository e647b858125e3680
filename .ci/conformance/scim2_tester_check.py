"""Runs scim2-tester's checks against a SCIM server and fails on any failed check.

Usage: python scim2_tester_check.py BASE_URL TOKEN

scim2-tester 0.5.2 has no command line of its own (and the CLI in scim2-cli has a broken
--exclude-tags), so this calls its library entry point, check_server, with every check.
Prints one line per check and a closing "N passed, N failed" line; exits 1 if any check ended
in ERROR or CRITICAL.
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILED = {Status.ERROR, Status.CRITICAL}


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    results = check_server(SyncSCIMClient(http))
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status.name] = counts.get(result.status.name, 0) + 1
        line = f"{result.status.name:<10} {result.title}"
        if result.resource_type:
            line += f" [{result.resource_type}]"
        if result.status is not Status.SUCCESS and result.reason:
            line += f": {result.reason}"
        print(line)
    failed = sum(1 for result in results if result.status in FAILED)
    print("scim2-tester statuses: " + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())))
    print(f"scim2-tester: {len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
