#!/usr/bin/env bash
# setup.sh -- installs tests/router-clients' pinned npm packages with
# `npm ci` (the committed package-lock.json) when node_modules is missing or
# older than the lockfile. Silent unless npm fails. Exit 0 ready, 1 not.
set -u
cd "$(dirname "$0")"
mark=node_modules/.slodrill-router-clients
if [ -f "$mark" ] && [ ! package-lock.json -nt "$mark" ] && [ ! package.json -nt "$mark" ]; then
  exit 0
fi
if ! log=$(npm ci --no-audit --no-fund --loglevel=error 2>&1); then
  printf '%s\n' "$log" >&2
  echo "setup.sh: npm ci failed in tests/router-clients" >&2
  exit 1
fi
touch "$mark"
