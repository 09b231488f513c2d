#!/usr/bin/env bash
# Vendor the NHS.UK frontend's compiled files into the gateway's static folder.
#
#   bash deploy/gateway/vendor-nhsuk.sh
#
# Fetches the pinned version of the npm package nhsuk-frontend (npm pack: no node_modules,
# no build) and copies its compiled CSS, its JavaScript module and its images into
# services/gateway/static/nhsuk/. They are committed, so that installing Linkwell (pip)
# needs no npm and a page never depends on a third-party host at run time.
# tests/unit/test_gateway_static.py checks that what is vendored is this version.
set -euo pipefail
VERSION=10.6.1
cd "$(dirname "$0")/../.."
target=services/gateway/static/nhsuk
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "nhsuk-frontend@$VERSION" >/dev/null && tar xzf "nhsuk-frontend-$VERSION.tgz")
dist="$work/package/dist/nhsuk"
rm -rf "$target"
mkdir -p "$target"
cp "$dist/nhsuk-frontend.min.css" "$dist/nhsuk-frontend.min.js" "$target/"
cp -r "$dist/assets/images" "$target/images"
sed -n '/^## Licence/,$p' "$work/package/README.md" > "$target/LICENCE.md"
echo "$VERSION" > "$target/VERSION"
bash deploy/vendored.sh   # their digests, which tests/unit/test_vendored.py checks
echo "vendored nhsuk-frontend $VERSION into $target"
