#!/usr/bin/env bash
# Mail log search (issue 16): one day of 100,000 messages, searched by `mailops log` and by
# Get-MailLog, side by side with grep over the same day written as Postfix-style text (what a
# Postfix administrator searches). Figures go into bench/README.md. Bounded: fixed counts; all
# under $BENCH_DIR, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/mailops-logbench}
MESSAGES=${MESSAGES:-100000}
REPS=${REPS:-5}
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"
trap 'rm -rf "$BENCH_DIR"' EXIT
export PATH="$PATH:$HOME/.dotnet/tools"

dotnet build -c Release -v q -nologo bench/MailOps.Bench >/dev/null
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null
dotnet build -c Release -v q -nologo src/MailOps.PowerShell >/dev/null
bench="dotnet bench/MailOps.Bench/bin/Release/net10.0/mailops-bench.dll"
mailops=src/MailOps.Cli/bin/Release/net10.0/mailops
q="$BENCH_DIR/queue"

$bench maillog --queue "$q" --messages "$MESSAGES" --text "$BENCH_DIR/maillog"
ls -l "$q"/log/ "$BENCH_DIR/maillog" | awk '{print $5, $9}'
cat "$q"/log/*.jsonl > /dev/null; cat "$BENCH_DIR/maillog" > /dev/null   # warm the page cache

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # label, command...
  local label=$1; shift
  local times=() out
  for _ in $(seq "$REPS"); do
    local start=$(date +%s.%N)
    out=$("$@" | wc -l)
    times+=("$(echo "$(date +%s.%N) - $start" | bc)")
  done
  printf '%-58s %6s lines  median %.3f s  (%s)\n' "$label" "$out" "$(printf '%s\n' "${times[@]}" | median)" "$(printf '%.3f ' "${times[@]}")"
}

echo "== one day, $MESSAGES messages"
run "mailops log --recipient user12345@dest445.example"    $mailops log --queue "$q" --recipient user12345@dest445.example
run "grep -i 'to=<user12345@dest445.example>' (Postfix way)" grep -i 'to=<user12345@dest445.example>' "$BENCH_DIR/maillog"
run "mailops log --message-id '<4711.*'"                   $mailops log --queue "$q" --message-id '<4711.*'
run "mailops log --sender 'sender42@*'"                    $mailops log --queue "$q" --sender 'sender42@*'
run "grep -i 'from=<sender42@' (Postfix way: received only)" grep -i 'from=<sender42@' "$BENCH_DIR/maillog"
run "mailops log --event bounced"                          $mailops log --queue "$q" --event bounced
run "grep ': bounced ' (Postfix way)"                      grep ': bounced ' "$BENCH_DIR/maillog"

echo "== Get-MailLog in pwsh (median of $REPS, after one warm-up)"
pwsh -NoProfile -Command "
  Import-Module ./MailOps.psd1
  \$null = Get-MailLog -QueuePath '$q' -Recipient 'user1@dest1.example'
  foreach (\$case in @(@{ Recipient = 'user12345@dest445.example' }, @{ Sender = 'sender42@*' }, @{ Event = 'Bounced' })) {
    \$runs = foreach (\$i in 1..$REPS) { (Measure-Command { \$script:n = @(Get-MailLog -QueuePath '$q' @case).Count }).TotalSeconds }
    '{0,-40} {1,6} entries  median {2:N3} s' -f ((\$case.GetEnumerator() | ForEach-Object { '-{0} {1}' -f \$_.Key, \$_.Value }) -join ' '), \$n, ((\$runs | Sort-Object)[[int][math]::Floor(\$runs.Count / 2)])
  }"
