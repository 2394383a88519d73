#!/usr/bin/env bash
# SMTP ingest benchmark (issue 3): Postfix's smtp-source, 20 sessions, 4 KiB messages, against a
# private Postfix (hold: every message fsynced into hold/, pure durable ingest) and `mailops serve`
# (HoldIncoming: every message committed durably and kept held) in the same run, repetitions
# interleaved, through ../shared/tools/mtabench/ingest.sh, which checks after every repetition
# that each target's durable count grew by exactly MSGS.
# Bounded: MSGS per rep (default 5000), REPS (default 5), timeout per rep. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-smtp-bench}
PORT=${PORT:-2600}
export REPS=${REPS:-5} MSGS=${MSGS:-5000} SESSIONS=${SESSIONS:-20} SIZE=${SIZE:-4096}

rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null
mailops=$PWD/src/MailOps.Cli/bin/Release/net10.0/mailops
. bench/baseline.sh   # BASELINE=<rev>: that revision's mailops runs beside this one, on PORT+1
queue=$BENCH_DIR/queue
cat > "$BENCH_DIR/config.json" <<JSON
{ "HostName": "mx.bench.test", "LocalDomains": ["bench.test"], "Mailboxes": ["*@bench.test"],
  "HoldIncoming": true, "MaxConnectionsPerClient": 200, "Tls": { "Enabled": false } }
JSON
"$mailops" serve --config "$BENCH_DIR/config.json" --queue "$queue" --listen 127.0.0.1:$PORT 2> "$BENCH_DIR/serve.log" &
serve=$!
base_serve=""
targets=(postfix=127.0.0.1:2525 mailops=127.0.0.1:$PORT)
if [ -n "$baseline_mailops" ]; then
    "$baseline_mailops" serve --config "$BENCH_DIR/config.json" --queue "$BENCH_DIR/baseline-queue" --listen 127.0.0.1:$((PORT + 1)) 2> "$BENCH_DIR/baseline.log" &
    base_serve=$!
    targets+=(baseline=127.0.0.1:$((PORT + 1)))
    export COUNT_CMD_BASELINE="ls $BENCH_DIR/baseline-queue/env | wc -l"
    if [ "${RESET:-keep}" = keep ]; then export RESET_CMD_BASELINE=true
    elif [ "$RESET" = remove ]; then export RESET_CMD_BASELINE="ls $BENCH_DIR/baseline-queue/env | xargs -r -n 2000 '$baseline_mailops' remove --queue $BENCH_DIR/baseline-queue >/dev/null"
    else export RESET_CMD_BASELINE="find $BENCH_DIR/baseline-queue/env $BENCH_DIR/baseline-queue/mess $BENCH_DIR/baseline-queue/index -type f -delete; if [ -d $BENCH_DIR/baseline-queue/journal ]; then find $BENCH_DIR/baseline-queue/journal -type f -delete; fi"; fi
fi
cleanup() { kill -TERM $serve $base_serve 2>/dev/null || true; wait $serve $base_serve 2>/dev/null || true; "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1 || true; rm -rf "$BENCH_DIR"; }
trap cleanup EXIT
"$MTABENCH/postfix-up.sh" hold >/dev/null
for _ in $(seq 50); do grep -q "serving on" "$BENCH_DIR/serve.log" && { [ -z "$base_serve" ] || grep -q "serving on" "$BENCH_DIR/baseline.log"; } && break; sleep 0.2; done

export COUNT_CMD_MAILOPS="ls $queue/env | wc -l"
# No deletion between repetitions, for either server: the harness checks each count grew by
# exactly MSGS, and mass deletes (this filesystem is mounted with online discard) leave kernel
# work behind that slows whichever repetition follows. RESET=delete restores the default.
# RESET=remove: each server empties its queue with its own command, Postfix with `postsuper -d
# ALL` (the harness's default), MailOps with `mailops remove` (whose files become spare files,
# docs/queue.md): the way an operator empties a queue, not files deleted behind its back.
if [ "${RESET:-keep}" = keep ]; then export RESET_CMD_POSTFIX=true RESET_CMD_MAILOPS=true
elif [ "$RESET" = remove ]; then
    export RESET_CMD_MAILOPS="ls $queue/env | xargs -r -n 2000 '$mailops' remove --queue $queue >/dev/null"
else
    export RESET_CMD_MAILOPS="find $queue/env $queue/mess $queue/index -type f -delete; if [ -d $queue/journal ]; then find $queue/journal -type f -delete; fi"
    # SETTLE=S: after emptying both queues, sync and wait S seconds before the repetition, so the
    # file system has finished with the deletes (online discard) before the clock starts.
    if [ "${SETTLE:-0}" != 0 ]; then
        . "$MTABENCH/lib.sh"
        export RESET_CMD_POSTFIX="postsuper -c '$PF_CONF' -d ALL >/dev/null 2>&1; sync; sleep $SETTLE"
        export RESET_CMD_MAILOPS="$RESET_CMD_MAILOPS; sync; sleep $SETTLE"
    fi
fi
"$MTABENCH/ingest.sh" "${targets[@]}"
