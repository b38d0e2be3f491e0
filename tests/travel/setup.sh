#!/usr/bin/env bash
# setup.sh -- installs the pinned playwright-core of tests/travel (npm ci) when
# node_modules is missing or older than package.json / package-lock.json. The
# browser is Debian's chromium: playwright-core downloads none. Quiet unless npm
# fails. Exit 0 ready, 1 npm failed.
set -u
cd "$(dirname "$0")"
stamp=node_modules/.slodrill-installed
if [ -f "$stamp" ] && [ ! package.json -nt "$stamp" ] && [ ! package-lock.json -nt "$stamp" ]; then
  exit 0
fi
if ! out=$(npm ci --no-audit --no-fund --loglevel=error 2>&1); then
  echo "$out" >&2
  echo "setup.sh: 'npm ci' failed in tests/travel" >&2
  exit 1
fi
touch "$stamp"
