#!/usr/bin/env bash
# deps.sh -- install the Debian packages slodrill needs, when they are missing.
#
#   scripts/deps.sh build   libraries to build bin/slodrill
#   scripts/deps.sh test    the same, plus what the tests use
#
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
set -euo pipefail
mode=${1:-build}

# pkg-config name -> Debian package
declare -A pc_pkg=(
  [libcurl]=libcurl4-openssl-dev
  [libevent]=libevent-dev
  [libevent_pthreads]=libevent-dev
  [libcjson]=libcjson-dev
  [yaml-0.1]=libyaml-dev
  [sqlite3]=libsqlite3-dev
  [hiredis]=libhiredis-dev
)
# command -> Debian package
declare -A cmd_pkg=( [cc]=gcc [make]=make [pkg-config]=pkg-config )
# Tools some tests drive; best effort: a test that lacks one says it skipped.
declare -A opt_pkg=()
if [ "$mode" = test ]; then
  pc_pkg[cmocka]=libcmocka-dev
  cmd_pkg[curl]=curl
  cmd_pkg[sqlite3]=sqlite3
  cmd_pkg[python3]=python3
  opt_pkg=( [tmux]=tmux [node]=nodejs [npm]=npm [chromium]=chromium [promtool]=prometheus
            [redis-server]=redis-server )
fi

missing=()
for c in "${!cmd_pkg[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("${cmd_pkg[$c]}")
done
for p in "${!pc_pkg[@]}"; do
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$p"; then
    missing+=("${pc_pkg[$p]}")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps: missing packages; run as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

optional=()
for c in "${!opt_pkg[@]}"; do
  command -v "$c" >/dev/null 2>&1 || optional+=("${opt_pkg[$c]}")
done
if [ ${#optional[@]} -gt 0 ]; then
  mapfile -t optional < <(printf '%s\n' "${optional[@]}" | sort -u)
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing test tools ${optional[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null 2>&1; } ||
      echo "deps: could not install ${optional[*]}; the tests that need them will say so" >&2
  else
    echo "deps: optional test tools missing (as root: apt-get install -y ${optional[*]})" >&2
  fi
fi
exit 0
