#!/usr/bin/env bash
# run.sh -- runs every test binary and end-to-end script; prints "N passed, N failed".
#
# Environment: BUILD (build dir), BIN (where slodrill is), SLODRILL_VALGRIND=1
# to run the binaries under valgrind, TESTS="name ..." to run a subset.
set -u
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
export BUILD BIN
cd "$(dirname "$0")/.."

passed=0
failed=0
failed_names=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-tests.XXXXXX")

vg=()
if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then
  vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no)
fi

selected() {
  [ -z "${TESTS:-}" ] && return 0
  local t
  for t in $TESTS; do [ "$t" = "$1" ] && return 0; done
  return 1
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.o|*.d) continue ;; esac
  name=$(basename "$t")
  selected "$name" || continue
  log="$logdir/$name.log"
  start=$(date +%s.%N)
  timeout 600 "${vg[@]}" "$t" >"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$NF} END{print s+0}')
  f=$(grep -Eo '^\[  FAILED  \] [0-9]+' "$log" | awk '{s+=$NF} END{print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -eq 0 ]; then
    printf '  ok    %-34s %3d tests  %5ss\n' "$name" "$p" "$secs"
  else
    printf '  FAIL  %-34s %3d failed (exit %d)  %5ss\n' "$name" "$f" "$rc" "$secs"
    failed_names+=("$name")
    sed 's/^/        /' "$log" | tail -40
  fi
done

# End-to-end scripts: each prints "ok" lines or fails with a non-zero exit.
for s in tests/e2e_*.sh; do
  [ -f "$s" ] || continue
  name=$(basename "$s" .sh)
  selected "$name" || continue
  log="$logdir/$name.log"
  start=$(date +%s.%N)
  timeout 900 bash "$s" >"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -eq 0 ]; then
    printf '  ok    %-34s %3d checks %5ss\n' "$name" "$p" "$secs"
  else
    printf '  FAIL  %-34s %3d failed (exit %d)  %5ss\n' "$name" "$f" "$rc" "$secs"
    failed_names+=("$name")
    sed 's/^/        /' "$log" | tail -60
  fi
done

rm -rf "$logdir"
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
