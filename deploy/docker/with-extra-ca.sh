#!/bin/sh
# with-extra-ca.sh COMMAND...: run COMMAND (pip, in deploy/Dockerfile's builder) trusting
# the image's CA bundle plus, if given, the build secret "extra_ca" (a PEM file: a company
# or proxy CA), e.g.
#   docker build --secret id=extra_ca,src=/usr/local/share/ca-certificates/corp.crt ...
# It only ever adds trust; it never turns verification off. Empty PIP_INDEX_URL /
# PIP_EXTRA_INDEX_URL build args are dropped, so pip keeps its defaults.
set -eu

[ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL
[ -n "${PIP_EXTRA_INDEX_URL:-}" ] || unset PIP_EXTRA_INDEX_URL

secret=/run/secrets/extra_ca
if [ ! -s "$secret" ]; then
    exec "$@"
fi

base=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$base" ]; then
    # no system bundle: start from the one pip itself ships
    base=$(python3 -c 'import pip._vendor.certifi as c; print(c.where())')
fi
bundle=$(mktemp)
trap 'rm -f "$bundle"' EXIT
cat "$base" >"$bundle"
printf '\n' >>"$bundle"
cat "$secret" >>"$bundle"
export PIP_CERT="$bundle" SSL_CERT_FILE="$bundle" REQUESTS_CA_BUNDLE="$bundle"
echo "with-extra-ca: trusting the extra CA from the build secret as well" >&2
"$@"
