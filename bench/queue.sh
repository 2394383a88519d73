#!/usr/bin/env bash
# Queue store benchmarks (issue 2). Figures go into bench/README.md.
#   1. durable enqueue: naive one-at-a-time loop vs the queue store with 1 and 20 writers
#   2. `mailops queue --json` over 100,000 queued messages (wall time, 5 runs)
#   3. memory of a process holding 100,000 queued messages
# Bounded: fixed message counts; everything lives under $BENCH_DIR and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-bench}
COUNT=${COUNT:-2000}
REPS=${REPS:-3}
LIST_COUNT=${LIST_COUNT:-100000}
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
trap 'rm -rf "$BENCH_DIR"' EXIT

dotnet build -c Release -v q -nologo bench/MailOps.Bench >/dev/null
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null
bench="dotnet bench/MailOps.Bench/bin/Release/net10.0/mailops-bench.dll"
mailops=src/MailOps.Cli/bin/Release/net10.0/mailops

echo "== durable enqueue (4 KiB messages)"
$bench compare --dir "$BENCH_DIR/enqueue" --count "$COUNT" --reps "$REPS" --writers 1,20

echo "== listing $LIST_COUNT queued messages"
$bench fill --queue "$BENCH_DIR/list" --count "$LIST_COUNT" --writers 20
sync
$mailops queue --json --queue "$BENCH_DIR/list" > /dev/null   # warm the page cache once
for i in 1 2 3 4 5; do
  /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB max resident" \
    $mailops queue --json --queue "$BENCH_DIR/list" > "$BENCH_DIR/list.json"
done 2>&1
echo "entries in the JSON array: $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$BENCH_DIR/list.json")"

echo "== memory holding $LIST_COUNT messages"
$bench memory --queue "$BENCH_DIR/list"
