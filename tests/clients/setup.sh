#!/usr/bin/env bash
# setup.sh -- installs the pinned SDKs of tests/clients when node_modules is
# missing or older than package.json / package-lock.json. Quiet unless npm
# fails. Exit 0 ready, 1 npm failed.
set -u
cd "$(dirname "$0")"
stamp=node_modules/.slodrill-installed
if [ -f "$stamp" ] && [ ! package.json -nt "$stamp" ] &&
   { [ ! -f package-lock.json ] || [ ! package-lock.json -nt "$stamp" ]; }; then
  exit 0
fi
if [ -f package-lock.json ]; then
  cmd=(npm ci --no-audit --no-fund --loglevel=error)
else
  cmd=(npm install --no-audit --no-fund --loglevel=error)
fi
if ! out=$("${cmd[@]}" 2>&1); then
  echo "$out" >&2
  echo "setup.sh: '${cmd[*]}' failed in tests/clients" >&2
  exit 1
fi
touch "$stamp"
