#!/usr/bin/env bash
# Delivery benchmark (issues 4, 17): a preloaded queue of N messages (4 KiB) delivered to Postfix's
# smtp-sink on loopback, MailOps and Postfix side by side in one run, repetitions interleaved.
#  - Postfix: ../shared/tools/mtabench/delivery.sh with REPS=1 (preload N into hold via smtpd,
#    then clock from "postsuper -H ALL; postqueue -f" until smtp-sink counted N more).
#  - MailOps, measured the same way ("release"): preload N held through `mailops serve
#    --no-delivery --hold-incoming` with the same smtp-source command (count checked), start
#    `mailops serve` (delivery on, SmartHost = the sink) over the held queue, then clock from
#    `mailops release --all` until smtp-sink counted N more; the queue must then drain.
#  - MailOps from a cold start ("cold"): preload N (not held), stop, sync, then clock from starting
#    `mailops serve` until the sink counted N more: process start-up, the sweep and the first
#    queue scan are inside the time.
# MODES="release cold" picks the MailOps measurements. Bounded: N per rep, REPS, TIMEOUT per rep.
# Loopback only (127.0.0.1).
set -uo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
. "$MTABENCH/lib.sh"
N=${N:-20000}; SIZE=${SIZE:-4096}; SESSIONS=${SESSIONS:-20}; REPS=${REPS:-3}; TIMEOUT=${TIMEOUT:-300}
MODES=${MODES:-release cold}
PORT=${PORT:-2600}
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-delivery-bench}
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null || die "build failed"
current_mailops=$PWD/src/MailOps.Cli/bin/Release/net10.0/mailops
. bench/baseline.sh   # BASELINE=<rev>: that revision's mailops is measured right after this one, each rep
cat > "$BENCH_DIR/config.json" <<JSON
{ "HostName": "mailops.bench.test", "LocalDomains": [], "SmartHost": "127.0.0.1:$SINK_PORT",
  "MaxConnectionsPerClient": 200, "ConcurrencyRemote": 20, "ConcurrencyPerDomain": 5, "ConcurrencyPerDomainMax": 20,
  "Tls": { "Enabled": false } }
JSON

serve=""
cleanup() {
    [ -n "$serve" ] && { kill -TERM "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
    "$MTABENCH/sink.sh" stop "$SINK_PORT" >/dev/null 2>&1
    "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1
    rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
"$MTABENCH/postfix-up.sh" hold >/dev/null || die "postfix-up failed"
"$MTABENCH/sink.sh" start "$SINK_PORT" >/dev/null || die "sink failed"

start_serve() {   # $@: extra serve options; waits for "serving on"
    : > "$BENCH_DIR/serve.log"
    "$mailops" serve --config "$BENCH_DIR/config.json" --queue "$BENCH_DIR/queue" --listen 127.0.0.1:$PORT "$@" 2>> "$BENCH_DIR/serve.log" &
    serve=$!
    for _ in $(seq 100); do grep -q "serving on" "$BENCH_DIR/serve.log" && return 0; sleep 0.05; done
    die "serve did not start: $(cat "$BENCH_DIR/serve.log")"
}
stop_serve() { kill -TERM "$serve"; wait "$serve" 2>/dev/null; serve=""; }
queued() { ls "$BENCH_DIR/queue/env" 2>/dev/null | wc -l; }

run_mailops() {   # $1 label, $2 binary, $3 mode (release|cold): preload N, then clock a server delivering them to the sink
    local label=$1 bin=$2 mode=$3 c0 t0 t1 t2 end got left wall rt chk hold=()
    mailops=$bin
    rm -rf "$BENCH_DIR/queue"
    [ "$mode" = release ] && hold=(--hold-incoming)
    start_serve --no-delivery "${hold[@]}"
    timeout "$TIMEOUT" smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -d -M client.bench.test \
        -f bench@client.bench.test -t user@bench.test "127.0.0.1:$PORT" > "$BENCH_DIR/smtp-source.out" 2>&1 || { echo "  $label $mode rep $r: preload failed"; err=1; stop_serve; return; }
    stop_serve
    [ "$(queued)" -eq "$N" ] || { echo "  $label $mode rep $r: queue has $(queued), expected $N"; err=1; return; }
    sync
    c0=$("$MTABENCH/sink.sh" count "$SINK_PORT")
    if [ "$mode" = release ]; then
        start_serve
        sleep 1
        t0=$(now)
        "$mailops" release --all --queue "$BENCH_DIR/queue" > /dev/null || { echo "  $label $mode rep $r: release failed"; err=1; }
    else
        t0=$(now)
        start_serve
    fi
    end=$(( $(date +%s) + TIMEOUT ))
    while [ $(( $("$MTABENCH/sink.sh" count "$SINK_PORT") - c0 )) -lt "$N" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.01; done
    t1=$(now); got=$(( $("$MTABENCH/sink.sh" count "$SINK_PORT") - c0 ))
    while [ "$(queued)" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.05; done
    t2=$(now); left=$(queued)
    stop_serve
    wall=$(elapsed "$t0" "$t1"); rt=$(rate "$got" "$wall")
    chk=OK; { [ "$got" -eq "$N" ] && [ "$left" -eq 0 ]; } || { chk="MISMATCH (sink +$got, queue left $left)"; err=1; }
    [ "$chk" = OK ] && rates["$label $mode"]+="$rt "
    printf '  %s %s rep %d: %d msgs delivered in %8.3f s = %8.1f msg/s  (queue empty at %.3f s) %s\n' "$label" "$mode" "$r" "$got" "$wall" "$rt" "$(elapsed "$t0" "$t2")" "$chk"
}

echo "# delivery $(date -u +%FT%TZ) N=$N size=$SIZE reps=$REPS -> smtp-sink 127.0.0.1:$SINK_PORT; $(conditions)"
declare -A rates; pf_rates=""; err=0
for ((r=1; r<=REPS; r++)); do
    # Postfix
    out=$(N=$N SIZE=$SIZE SESSIONS=$SESSIONS REPS=1 TIMEOUT=$TIMEOUT "$MTABENCH/delivery.sh" 2>&1)
    line=$(grep "rep 1:" <<<"$out"); echo "  postfix $line"
    rt=$(sed -n 's/.*= *\([0-9.]*\) msg\/s.*/\1/p' <<<"$line")
    grep -q "OK" <<<"$line" && pf_rates+="$rt " || err=1

    # MailOps (and, with BASELINE=<rev>, the version before the change, right after it)
    for mode in $MODES; do
        run_mailops mailops "$current_mailops" "$mode"
        [ -n "$baseline_mailops" ] && run_mailops baseline "$baseline_mailops" "$mode"
    done
done
pf=$(printf '%s\n' $pf_rates | stats); pf_med=$(sed -n 's/.*median=\([0-9.]*\).*/\1/p' <<<"$pf")
echo "RESULT delivery postfix $pf"
for key in "${!rates[@]}"; do
    st=$(printf '%s\n' ${rates[$key]} | stats); med=$(sed -n 's/.*median=\([0-9.]*\).*/\1/p' <<<"$st")
    echo "RESULT delivery $key $st ratio_vs_postfix=$(awk -v a="$med" -v b="$pf_med" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }')"
done
echo "RESULT verify=$([ $err = 0 ] && echo OK || echo ERRORS)"
