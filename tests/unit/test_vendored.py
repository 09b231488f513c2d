"""Vendored files (the NHS.UK frontend the gateway serves, axe-core the browser test runs)
are exactly the reviewed ones: each file's SHA-256 is in deploy/vendored.sha256, and no
vendored file is missing from it (bash deploy/vendored.sh rewrites it after a review)."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "vendored.sha256"
VENDORED = (ROOT / "services/gateway/static/nhsuk", ROOT / "tests/browser/vendor")


def manifest() -> dict[str, str]:
    listed = {}
    for line in MANIFEST.read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        listed[path.lstrip("*")] = digest
    return listed


def test_every_vendored_file_matches_its_digest():
    listed = manifest()
    assert listed, "deploy/vendored.sha256 is empty"
    for path, digest in listed.items():
        file = ROOT / path
        assert file.is_file(), f"{path} is in deploy/vendored.sha256 but missing"
        actual = hashlib.sha256(file.read_bytes()).hexdigest()
        assert actual == digest, f"{path} changed: review it, then bash deploy/vendored.sh"


def test_no_vendored_file_is_unlisted():
    listed = set(manifest())
    present = {str(p.relative_to(ROOT)) for d in VENDORED for p in d.rglob("*") if p.is_file()}
    assert present - listed == set(), "not in deploy/vendored.sha256: run bash deploy/vendored.sh"
    assert {p for p in listed if "nhsuk-frontend.min.css" in p}
    assert {p for p in listed if p.endswith("axe.min.js")}
