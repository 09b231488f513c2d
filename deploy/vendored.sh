#!/usr/bin/env bash
# Write deploy/vendored.sha256: the SHA-256 of every file vendored from elsewhere (the
# NHS.UK frontend in services/gateway/static/nhsuk, axe-core in tests/browser/vendor).
# tests/unit/test_vendored.py checks the files against it, so a changed or added vendored
# file fails the tests until someone reviews it and reruns this (vendor-nhsuk.sh does).
#
#   bash deploy/vendored.sh            sha256sum -c deploy/vendored.sha256 checks by hand
set -euo pipefail
cd "$(dirname "$0")/.."
find services/gateway/static/nhsuk tests/browser/vendor -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum >deploy/vendored.sha256
echo "deploy/vendored.sha256: $(wc -l <deploy/vendored.sha256) files"
