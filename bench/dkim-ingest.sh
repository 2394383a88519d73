#!/usr/bin/env bash
# Ingest of mail that gets DKIM-signed (issue 14): smtp-source from loopback (a RelayClient, so a
# trusted source), 20 sessions, 4 KiB, From: bench@client.bench.test; three `mailops serve`
# (HoldIncoming) side by side with Postfix's durable ingest (hold), repetitions interleaved through
# ../shared/tools/mtabench/ingest.sh, which checks each target's count grew by exactly MSGS:
#   unsigned: no key;  rsa: an RSA-2048 key for client.bench.test;  ed25519: an Ed25519 key.
# Bounded: MSGS per rep (5000), REPS (3), timeout per rep. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-dkim-bench}
PORT=${PORT:-2610}
export REPS=${REPS:-3} MSGS=${MSGS:-5000} SESSIONS=${SESSIONS:-20} SIZE=${SIZE:-4096}
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null
mailops=$PWD/src/MailOps.Cli/bin/Release/net10.0/mailops
cat > "$BENCH_DIR/config.json" <<JSON
{ "HostName": "mx.bench.test", "LocalDomains": ["bench.test"], "Mailboxes": ["*@bench.test"],
  "HoldIncoming": true, "MaxConnectionsPerClient": 200, "Tls": { "Enabled": false } }
JSON
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1 || true; rm -rf "$BENCH_DIR"; }
trap cleanup EXIT
targets=(postfix=127.0.0.1:2525)
i=0
for kind in unsigned rsa ed25519; do
    queue=$BENCH_DIR/$kind
    mkdir -p "$queue"
    case $kind in
        rsa) "$mailops" dkim keygen --queue "$queue" --domain client.bench.test --selector s1 >/dev/null 2>&1 ;;
        ed25519) "$mailops" dkim keygen --queue "$queue" --domain client.bench.test --selector e1 --algorithm ed25519 >/dev/null 2>&1 ;;
    esac
    "$mailops" serve --config "$BENCH_DIR/config.json" --queue "$queue" --listen 127.0.0.1:$((PORT + i)) 2> "$BENCH_DIR/$kind.log" &
    pids+=($!)
    targets+=("$kind=127.0.0.1:$((PORT + i))")
    label=$(echo "$kind" | tr a-z A-Z)
    export "COUNT_CMD_$label=ls $queue/env | wc -l" "RESET_CMD_$label=true"
    i=$((i + 1))
done
export RESET_CMD_POSTFIX=true
"$MTABENCH/postfix-up.sh" hold >/dev/null
for kind in unsigned rsa ed25519; do for _ in $(seq 50); do grep -q "serving on" "$BENCH_DIR/$kind.log" && break; sleep 0.2; done; done
"$MTABENCH/ingest.sh" "${targets[@]}"
# Every message of the signed runs carries a signature (checked on one of each).
for kind in rsa ed25519; do
    f=$(find "$BENCH_DIR/$kind/mess" -type f -print -quit) # not ls | head: SIGPIPE under pipefail
    head -c 200 "$f" | grep -q '^DKIM-Signature:' || { echo "$kind: first message is not signed" >&2; exit 1; }
done
echo "signed runs: every sampled message carries a DKIM-Signature"
