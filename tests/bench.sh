#!/usr/bin/env bash
# bench.sh -- benchmarks, bounded to a few minutes; prints the figures and
# exits 1 when a target is missed. `make bench` runs it with BIN set.
#
# Fake providers (docs/performance.md, "## Fake providers"):
#   - one `slodrill fake` process holds 10,000 concurrent streaming answers
#     at 20 tokens/s in under 200 MB resident memory, and keeps their pace;
#   - an idle fake answers a non-streaming request (ttft 0) in under 1 ms
#     median.
# Environment: BIN (where slodrill is), BENCH_STREAMS (default 10000),
# BENCH_OUT (a file to append the figures to).
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
SLODRILL=$BIN/slodrill
STREAMS=${BENCH_STREAMS:-10000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/slodrill-bench.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fig() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
judge() { # judge "what" value op limit
  if awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == "<" && v < l) || (op == ">" && v > l) || (op == ">=" && v >= l)) }'; then
    echo "ok - $1: $2 (target $3 $4)"
  else
    echo "not ok - $1: $2 (target $3 $4)"; fails=$((fails + 1))
  fi
}

[ -x "$SLODRILL" ] || { echo "bench.sh: $SLODRILL not built (make)"; exit 2; }
# 10,000 streams need 10,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
need=$((STREAMS + 200))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  echo "bench.sh: need $need open files, the hard limit is $(ulimit -Hn)"; exit 2
fi

echo "# building tests/bench/bench_fake"
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$tmp/bench_fake" tests/bench/bench_fake.c \
   $(pkg-config --cflags --libs libevent libcurl) || exit 2

"$SLODRILL" fake --config tests/bench/fakes.yaml >"$tmp/urls" 2>"$tmp/fake.err" &
pid=$!
for _ in $(seq 1 50); do [ "$(wc -l <"$tmp/urls")" -ge 2 ] && break; sleep 0.1; done
stream_url=$(awk '$1 == "stream" {print $2}' "$tmp/urls")
idle_url=$(awk '$1 == "idle" {print $2}' "$tmp/urls")
[ -n "$stream_url" ] && [ -n "$idle_url" ] || { echo "bench.sh: slodrill fake did not start"; cat "$tmp/fake.err"; exit 2; }

echo "# idle: non-streaming latency, 2000 sequential requests on one connection"
timeout 60 "$tmp/bench_fake" latency "$idle_url" sk-bench-idle 2000 | tee "$tmp/lat" || fails=$((fails + 1))

echo "# 2000 concurrent streams at 20 tokens/s (ramp 2 s, measure 5 s)"
timeout 60 "$tmp/bench_fake" streams "$stream_url" sk-bench-stream "$pid" 2000 2 5 | tee "$tmp/str2k" ||
  fails=$((fails + 1))
sleep 1
echo "# $STREAMS concurrent streams at 20 tokens/s (ramp 5 s, measure 10 s)"
timeout 120 "$tmp/bench_fake" streams "$stream_url" sk-bench-stream "$pid" "$STREAMS" 5 10 | tee "$tmp/str" ||
  fails=$((fails + 1))
rss_after=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
kill "$pid"; wait "$pid"; pid=

echo "# verdicts"
judge "non-streaming median latency, idle (ms)" "$(fig latency_median_ms "$tmp/lat")" "<" 1
judge "non-streaming requests that failed" "$(fig latency_failed "$tmp/lat")" "<" 1
judge "streams open at once" "$(fig streams_open_min "$tmp/str")" ">=" "$STREAMS"
judge "resident memory with every stream open (MB)" "$(fig rss_peak_mb "$tmp/str")" "<" 200
judge "pace per stream with 2000 streams, tokens/s (model: 20)" "$(fig tokens_per_s_per_stream "$tmp/str2k")" ">" 18
judge "pace per stream with $STREAMS streams, tokens/s (model: 20)" "$(fig tokens_per_s_per_stream "$tmp/str")" ">" 18
ev=$(fig events_per_s_total "$tmp/str"); cpu=$(fig fake_cpu_pct "$tmp/str")
echo "# the fake's cost: $(awk -v e="$ev" -v c="$cpu" 'BEGIN { if (e > 0) printf "%.1f", c * 1e4 / e; else print "-" }') us of CPU per stream event (one send per stream per loop turn); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# the fake's busy threads, % of a core each (one loop per CPU): $(fig fake_thread_cpu_pct "$tmp/str")"
echo "# events the fake sent over 10 ms late: $(fig events_late_pct "$tmp/str2k")% with 2000 streams, $(fig events_late_pct "$tmp/str")% with $STREAMS"
echo "# its threads waited for a CPU (taken by the client or other processes): $(fig fake_cpu_wait_pct "$tmp/str")% of a core"
echo "# fake RSS after the streams closed: $((${rss_after:-0} / 1024)) MB"

## Load generator (docs/performance.md, "## Load generator"):
#   - 5,000 req/s open loop against a fake answering at once, start gap p99 < 1 ms;
#   - 10,000 concurrent streams from one generator thread.
echo "# load generator: 5,000 req/s and 10,000 concurrent streams"
BUILD=${BUILD:-build}
if make --no-print-directory "$BUILD/tests/test_harness_loadgen_bench" >"$tmp/lg-build.log" 2>&1; then
  SLODRILL_BENCH=1 timeout 300 "$BUILD/tests/test_harness_loadgen_bench" >"$tmp/lg" 2>&1; rc=$?
  grep '^bench:' "$tmp/lg"
  [ -n "${BENCH_OUT:-}" ] && grep '^bench:' "$tmp/lg" >>"$BENCH_OUT"
  if [ "$rc" -eq 0 ]; then echo "ok - load generator targets held"
  else echo "not ok - load generator missed a target (exit $rc)"; grep -E 'ERROR|LINE' "$tmp/lg"; fails=$((fails + 1)); fi
else
  echo "not ok - could not build $BUILD/tests/test_harness_loadgen_bench"; tail -5 "$tmp/lg-build.log"
  fails=$((fails + 1))
fi

## Router (docs/performance.md, "## Router"); bounded to about a minute:
#   - added latency of a non-streaming request at 2,000 req/s: the same client
#     (tests/bench/bench_router.c, raw HTTP on epoll) straight to a fake that
#     answers at once and through `slodrill router`, in alternating 0.5 s
#     slices (`pair`) so both meet the same machine; median and p99 of each;
#     targets: at most 0.1 ms added median, 1 ms added p99. Judged with the
#     fake on the router's CPU, so both paths cross between CPUs equally
#     (client -> fake, client -> router); the figures with the fake beside
#     the client (every router hop crosses CPUs) are printed too;
#   - most req/s the router sustains pinned to one CPU (taskset), target
#     10,000, and its CPU per request (what one core could do when the client
#     keeps up: router_core_capacity_req_per_s);
#   - time-to-first-token overhead of a stream (target < 1 ms, median);
#   - 10,000 concurrent streams held through the router, its RSS < 300 MB
#     (fewer when the descriptor limit cannot give the router 2 per stream).
# BENCH_ROUTER_SECONDS (default 8) is the length of each load run.
echo "# router: added latency at 2,000 req/s, max req/s on one core, TTFT overhead, concurrent streams"
r_secs=${BENCH_ROUTER_SECONDS:-8}
r_fake= r_router=
r_stop() {
  [ -n "$r_router" ] && kill "$r_router" 2>/dev/null && wait "$r_router" 2>/dev/null
  [ -n "$r_fake" ] && kill "$r_fake" 2>/dev/null && wait "$r_fake" 2>/dev/null
  r_router= r_fake=
}
trap 'r_stop; cleanup' EXIT
r_figs="$tmp/router-figs"
: >"$r_figs"
if cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$tmp/bench_router" tests/bench/bench_router.c; then
  cpu_client=0 cpu_router=1
  [ "$(nproc)" -lt 2 ] && cpu_router=0
  taskset -c "$cpu_client" "$SLODRILL" fake --config tests/bench/router_fakes.yaml >"$tmp/r-fakes" 2>"$tmp/r-fakes.err" &
  r_fake=$!
  for _ in $(seq 1 50); do [ "$(wc -l <"$tmp/r-fakes")" -ge 2 ] && break; sleep 0.1; done
  r_inst=$(awk '$1 == "instant" {print $2}' "$tmp/r-fakes")
  r_tr=$(awk '$1 == "trickle" {print $2}' "$tmp/r-fakes")
  BENCH_INSTANT_BASE=$r_inst/v1 BENCH_TRICKLE_BASE=$r_tr/v1 \
    taskset -c "$cpu_router" "$SLODRILL" router --config tests/bench/router_config.yaml --port 0 \
    >"$tmp/r-router" 2>"$tmp/r-router.err" &
  r_router=$!
  for _ in $(seq 1 50); do [ -s "$tmp/r-router" ] && break; sleep 0.1; done
  r_port=$(sed -n 's|^router http://127.0.0.1:||p' "$tmp/r-router")
  if [ -z "$r_inst" ] || [ -z "$r_port" ]; then
    echo "not ok - router bench: the fakes or the router did not start"; cat "$tmp/r-fakes.err" "$tmp/r-router.err"
    fails=$((fails + 1))
  else
    bc_() { taskset -c "$cpu_client" "$tmp/bench_router" "$@"; }
    # the fake beside the client: every hop through the router crosses CPUs
    bc_ pair 127.0.0.1 "${r_inst##*:}" sk-bench-instant "$r_port" none 2000 "$r_secs" 32 >"$tmp/r-pair-x" || true
    # the fake on the router's CPU: both paths cross CPUs once each way
    taskset -a -pc "$cpu_router" "$r_fake" >/dev/null
    bc_ pair 127.0.0.1 "${r_inst##*:}" sk-bench-instant "$r_port" none 2000 "$r_secs" 32 >"$tmp/r-pair" || true
    sed -n 's/^a_//p' "$tmp/r-pair" >"$tmp/r-direct"
    sed -n 's/^b_//p' "$tmp/r-pair" >"$tmp/r-via"
    # the router's own CPU (utime + stime, in 1/100 s) around the closed-loop run
    r_cpu() { awk '{print $14 + $15}' "/proc/$r_router/stat"; }
    taskset -a -pc "$cpu_client" "$r_fake" >/dev/null # max: the router's CPU is its own
    r_c0=$(r_cpu)
    bc_ max 127.0.0.1 "$r_port" none "$r_secs" 64 >"$tmp/r-max" || true
    r_c1=$(r_cpu)
    taskset -a -pc "$cpu_router" "$r_fake" >/dev/null
    bc_ ttft 127.0.0.1 "${r_inst##*:}" sk-bench-instant 500 >"$tmp/r-ttft-direct" || true
    bc_ ttft 127.0.0.1 "$r_port" none 500 >"$tmp/r-ttft-via" || true
    taskset -a -pc "$cpu_client" "$r_fake" >/dev/null
    # streams: 2 descriptors each in the router (client side, upstream side)
    r_streams=10000
    r_fd=$(ulimit -n)
    if [ "$r_fd" != unlimited ] && [ $(((r_fd - 100) / 2)) -lt "$r_streams" ]; then
      r_streams=$(((r_fd - 100) / 2))
      echo "# the descriptor limit ($r_fd) lets the router hold $r_streams streams, not 10,000"
    fi
    BENCH_MODEL=bench-stream bc_ streams 127.0.0.1 "$r_port" none "$r_streams" 10 "$r_router" >"$tmp/r-streams" || true
    d_med=$(fig latency_median_us "$tmp/r-direct"); v_med=$(fig latency_median_us "$tmp/r-via")
    d_p99=$(fig latency_p99_us "$tmp/r-direct"); v_p99=$(fig latency_p99_us "$tmp/r-via")
    t_d=$(fig ttft_median_us "$tmp/r-ttft-direct"); t_v=$(fig ttft_median_us "$tmp/r-ttft-via")
    {
      echo "router_direct_median_us $d_med"; echo "router_direct_p99_us $d_p99"
      echo "router_via_median_us $v_med"; echo "router_via_p99_us $v_p99"
      echo "router_via_late $(fig late "$tmp/r-via")"; echo "router_via_failed $(fig failed "$tmp/r-via")"
      echo "router_added_median_ms $(awk -v a="$v_med" -v b="$d_med" 'BEGIN {printf "%.3f", (a - b) / 1000}')"
      echo "router_added_p99_ms $(awk -v a="$v_p99" -v b="$d_p99" 'BEGIN {printf "%.3f", (a - b) / 1000}')"
      x_dm=$(fig a_latency_median_us "$tmp/r-pair-x"); x_vm=$(fig b_latency_median_us "$tmp/r-pair-x")
      x_dp=$(fig a_latency_p99_us "$tmp/r-pair-x"); x_vp=$(fig b_latency_p99_us "$tmp/r-pair-x")
      echo "router_xcpu_direct_median_us $x_dm"; echo "router_xcpu_via_median_us $x_vm"
      echo "router_xcpu_added_median_ms $(awk -v a="$x_vm" -v b="$x_dm" 'BEGIN {printf "%.3f", (a - b) / 1000}')"
      echo "router_xcpu_added_p99_ms $(awk -v a="$x_vp" -v b="$x_dp" 'BEGIN {printf "%.3f", (a - b) / 1000}')"
      echo "router_max_req_per_s $(fig req_per_s "$tmp/r-max")"
      echo "router_max_median_us $(fig latency_median_us "$tmp/r-max")"
      echo "router_max_cpu_pct $(awk -v a="$r_c0" -v b="$r_c1" -v s="$r_secs" 'BEGIN {printf "%.0f", (b - a) / s}')"
      echo "router_cpu_us_per_req $(awk -v a="$r_c0" -v b="$r_c1" -v n="$(fig ok "$tmp/r-max")" 'BEGIN {if (n > 0) printf "%.1f", (b - a) * 10000 / n; else print -1}')"
      echo "router_core_capacity_req_per_s $(awk -v a="$r_c0" -v b="$r_c1" -v n="$(fig ok "$tmp/r-max")" 'BEGIN {if (n > 0 && b > a) printf "%.0f", n / ((b - a) / 100); else print -1}')"
      echo "router_ttft_direct_median_us $t_d"; echo "router_ttft_via_median_us $t_v"
      echo "router_ttft_overhead_ms $(awk -v a="$t_v" -v b="$t_d" 'BEGIN {printf "%.3f", (a - b) / 1000}')"
      echo "router_streams_target $r_streams"
      echo "router_streams_open_min $(fig streams_open_min "$tmp/r-streams")"
      echo "router_streams_rss_peak_mb $(fig rss_peak_mb "$tmp/r-streams")"
      echo "router_streams_hwm_mb $(fig hwm_mb "$tmp/r-streams")"
      echo "router_load $(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    } >"$r_figs"
    cat "$r_figs"
    judge "router: requests at 2,000 req/s that failed" "$(fig router_via_failed "$r_figs")" "<" 1
    judge "router: added median latency at 2,000 req/s (ms)" "$(fig router_added_median_ms "$r_figs")" "<" 0.1
    judge "router: added p99 latency at 2,000 req/s (ms)" "$(fig router_added_p99_ms "$r_figs")" "<" 1
    judge "router: max req/s on one core" "$(fig router_max_req_per_s "$r_figs")" ">=" 10000
    judge "router: time-to-first-token overhead, median (ms)" "$(fig router_ttft_overhead_ms "$r_figs")" "<" 1
    judge "router: streams held at once" "$(fig router_streams_open_min "$r_figs")" ">=" 10000
    judge "router: resident memory holding them (MB)" "$(fig router_streams_rss_peak_mb "$r_figs")" "<" 300
  fi
  r_stop
else
  echo "not ok - could not build tests/bench/bench_router.c"; fails=$((fails + 1))
fi
trap cleanup EXIT
[ -n "${BENCH_OUT:-}" ] && cat "$r_figs" >>"$BENCH_OUT"

if [ -n "${BENCH_OUT:-}" ]; then
  { echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "cpus $(nproc)"; cat "$tmp/lat"; sed 's/^/2k_/' "$tmp/str2k"; cat "$tmp/str"; } >>"$BENCH_OUT"
fi

## Cache (docs/performance.md, "## Cache"): a lookup (key + SQLite read of a
## hit on a 10,000-entry store) adds under 100 us median to a request.
echo "# cache: 10,000 lookups, every one a hit"
# shellcheck disable=SC2046
if cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I. -o "$tmp/bench_cache" tests/bench/bench_cache.c \
     "${BUILD:-build}/librouter.a" "${BUILD:-build}/libcommon.a" \
     $(pkg-config --cflags --libs libcjson sqlite3 yaml-0.1 libcurl libevent libevent_pthreads hiredis) -lpthread -lm; then
  "$tmp/bench_cache" "$tmp" >"$tmp/cache_figs" || { echo "not ok - bench_cache failed"; fails=$((fails + 1)); }
  cat "$tmp/cache_figs"
  judge "cache: lookup on a hit, median (us)" "$(fig cache_lookup_median_us "$tmp/cache_figs")" "<" 100
  [ -n "${BENCH_OUT:-}" ] && cat "$tmp/cache_figs" >>"$BENCH_OUT"
else
  echo "not ok - could not build tests/bench/bench_cache.c"; fails=$((fails + 1))
fi
[ "$fails" -eq 0 ]
