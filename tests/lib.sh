# lib.sh -- helpers for the end-to-end scripts: TAP-like "ok"/"not ok" lines.
BIN=${BIN:-bin}
SLODRILL=${SLODRILL:-$BIN/slodrill}
if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then
  SLODRILL_CMD=(valgrind --quiet --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite,indirect "$SLODRILL")
else
  SLODRILL_CMD=("$SLODRILL")
fi
export NO_COLOR=1
fails=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { # check "description" command...
  local d=$1; shift
  if "$@"; then ok "$d"; else notok "$d"; fi
}
# Under valgrind every step is 20-50 times slower, so a run's latency and
# success verdicts say nothing about the code; there such a check is skipped
# (TAP's "# SKIP") and valgrind_clean checks what valgrind can show.
judged() { # judged "description" command...
  if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then echo "ok - $1 # SKIP under valgrind"; return 0; fi
  check "$@"
}
valgrind_clean() { # valgrind_clean "what" EXIT_CODE: no memory error reported (valgrind's 99)
  if [ "${SLODRILL_VALGRIND:-0}" = 1 ]; then check "$1: valgrind found no memory error (exit $2)" [ "$2" -ne 99 ]; fi
  return 0
}
finish() { [ "$fails" -eq 0 ]; exit $?; }
json() { # json FILE EXPR  -- prints a value from a JSON file (python3)
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}
