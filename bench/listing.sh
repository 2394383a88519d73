#!/usr/bin/env bash
# Listing a long queue (issue 17), side by side with Postfix in one run: N messages (4 KiB) held in
# a private Postfix (smtp-source into hold/, count checked) and N queued in MailOps (mailops-bench
# fill, then a server start and stop, whose sweep compacts the summary index), then interleaved
# repetitions of `postqueue -j` and `mailops queue --json`, wall time and peak resident memory of
# the listing process (/usr/bin/time; postqueue's own, as its showq daemon reads the queue; mailops's
# with the mailops-list it becomes, as installed), and
# Get-MailQueue -First 20 and filtered listings in one warm pwsh. Bounded: N, REPS, TIMEOUT.
set -uo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
. "$MTABENCH/lib.sh"
N=${N:-100000}; REPS=${REPS:-5}; TIMEOUT=${TIMEOUT:-900}; SESSIONS=${SESSIONS:-20}
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-listbench}
export PATH="$PATH:$HOME/.dotnet/tools"
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
started_pf=0
cleanup() { [ "$started_pf" = 1 ] && "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1; rm -rf "$BENCH_DIR"; }
trap cleanup EXIT

dotnet build -c Release -v q -nologo bench/MailOps.Bench >/dev/null
dotnet build -c Release -v q -nologo src/MailOps.PowerShell >/dev/null
# mailops as installed: published, with mailops-list (NativeAOT) beside it, which `mailops queue` becomes.
dotnet publish -c Release -v q -nologo src/MailOps.Cli -o "$BENCH_DIR/bin" >/dev/null
dotnet publish -c Release -v q -nologo -r linux-x64 src/MailOps.List -o "$BENCH_DIR/bin" >/dev/null
mailops=$BENCH_DIR/bin/mailops
q="$BENCH_DIR/queue"

echo "== preload $N messages into Postfix (hold) and MailOps"
if ! pf_running; then "$MTABENCH/postfix-up.sh" hold >/dev/null || die "postfix-up failed"; started_pf=1; fi
pf_super -d ALL >/dev/null 2>&1
timeout "$TIMEOUT" smtp-source -s "$SESSIONS" -m "$N" -l 4096 -d -M client.bench.test \
    -f bench@client.bench.test -t user@bench.test "127.0.0.1:$PF_PORT" > "$BENCH_DIR/smtp-source.out" 2>&1 || die "preload failed"
held=$(pf_hold_count); [ "$held" -eq "$N" ] || die "Postfix holds $held, not $N"
timeout "$TIMEOUT" dotnet bench/MailOps.Bench/bin/Release/net10.0/mailops-bench.dll fill --queue "$q" --count "$N" --writers 20
port=$(( 30000 + RANDOM % 20000 ))
$mailops serve --queue "$q" --no-delivery --listen "127.0.0.1:$port" 2> "$BENCH_DIR/serve.log" &
pid=$!
for _ in $(seq 600); do grep -q "serving on" "$BENCH_DIR/serve.log" && break; sleep 0.1; done
kill -TERM "$pid"; wait "$pid"
sync
pf_queue -j > /dev/null; $mailops queue --json --queue "$q" > /dev/null   # warm the page cache once

echo "== $REPS interleaved listings of $N messages"
for r in $(seq "$REPS"); do
  /usr/bin/time -f "postfix postqueue -j          %e s wall, %U s user, %S s sys, %M KB max resident" \
      postqueue -c "$PF_CONF" -j > "$BENCH_DIR/postfix.json" 2>> "$BENCH_DIR/times"
  /usr/bin/time -f "mailops queue --json          %e s wall, %U s user, %S s sys, %M KB max resident" \
      $mailops queue --json --queue "$q" > "$BENCH_DIR/mailops.json" 2>> "$BENCH_DIR/times"
done
cat "$BENCH_DIR/times"
for who in postfix mailops; do
  printf '%-8s median %s s\n' "$who" "$(grep "^$who" "$BENCH_DIR/times" | awk '{print $4}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
echo "entries: postfix $(wc -l < "$BENCH_DIR/postfix.json") lines, mailops $(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$BENCH_DIR/mailops.json")"

echo "== Get-MailQueue on $N messages, one warm pwsh session (median of $REPS)"
pwsh -NoProfile -Command "
  Import-Module ./MailOps.psd1
  \$q = '$q'
  \$null = Get-MailQueue -QueuePath \$q -First 1
  \$cases = [ordered]@{
    'Get-MailQueue -First 20' = { @(Get-MailQueue -QueuePath \$q -First 20).Count }
    'Get-MailQueue -Recipient nobody@bench.test' = { @(Get-MailQueue -QueuePath \$q -Recipient 'nobody@bench.test').Count }
    'Get-MailQueue -Sender bench@* -First 50' = { @(Get-MailQueue -QueuePath \$q -Sender 'bench@*' -First 50).Count }
    'Get-MailQueue -State Held' = { @(Get-MailQueue -QueuePath \$q -State Held).Count }
    'Get-MailQueue (all)' = { @(Get-MailQueue -QueuePath \$q).Count }
  }
  foreach (\$name in \$cases.Keys) {
    \$runs = foreach (\$i in 1..$REPS) { (Measure-Command { \$script:n = & \$cases[\$name] }).TotalSeconds }
    '{0,-45} {1,7} messages  median {2:N3} s' -f \$name, \$n, ((\$runs | Sort-Object)[[int][math]::Floor(\$runs.Count / 2)])
  }"
