"""The API against its own OpenAPI document (`/api-docs/openapi.json`, built from the same
table as the router): schemathesis generates requests for every operation, a bounded
number each, and checks that none gets a 5xx, an undocumented status, content type or
header, that invalid data is refused, and that authentication is enforced where declared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from junction_harness import HOST, TIMEOUT, start_broker
from test_api import ADMIN


def test_every_operation_conforms_to_the_served_openapi_document(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(tmp_path / "b", config=f'api_key.bootstrap_file = "{keys}"\n', ws=False)
    try:
        base = f"http://{HOST}:{b.port('dashboard:http')}"
        doc = requests.get(f"{base}/api-docs/openapi.json", timeout=TIMEOUT).json()
        assert doc["openapi"].startswith("3.") and len(doc["paths"]) >= 45
        page = requests.get(f"{base}/api-docs", timeout=TIMEOUT)
        assert page.status_code == 200 and "openapi.json" in page.text
        st = Path(sys.executable).parent / "schemathesis"
        r = subprocess.run(
            [str(st), "run", f"{base}/api-docs/openapi.json", "--base-url", f"{base}/api/v5",
             "--auth", f"{ADMIN[0]}:{ADMIN[1]}", "--checks", "all",
             "--hypothesis-max-examples", "10", "--hypothesis-seed", "1", "--no-color",
             "--request-timeout", "10000"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        summary = "\n".join(l for l in r.stdout.splitlines() if "returned only 4xx" not in l)
        assert r.returncode == 0, summary[-6000:] + r.stderr[-2000:]
        b.assert_alive()
    finally:
        b.stop()
