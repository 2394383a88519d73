#!/usr/bin/env bash
# The sendmail path (issue 13), side by side with Postfix in one run, as root:
#  1. latency: N (200) invocations of `sendmail -t -i` with one small message each, MailOps'
#     installed sendmail (the NativeAOT drop helper) and Postfix's (sendmail -> postdrop)
#     interleaved; median and 95th percentile of the wall time of each invocation.
#  2. injection: M (5,000) messages handed in by U (4) parallel submitters through each sendmail;
#     the clock runs from the first invocation until the last message has left the maildrop
#     and sits in the queue (MailOps: serve --no-delivery, counted in env/; Postfix: private
#     instance with defer_transports=smtp, counted in its queue directories).
# Both sendmails run as root: Postfix's postdrop accepts its private configuration directory only
# from root (other users need it listed in /etc/postfix/main.cf, which the harness never writes).
# Needs the published programs (tests/run-all.sh or docs/install.md) in PUBLISHED.
# Bounded: N, M, a timeout on the injection wait. Loopback only. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
PUBLISHED=${PUBLISHED:-$PWD/artifacts/publish}
N=${N:-200} M=${M:-5000} U=${U:-4} TIMEOUT=${TIMEOUT:-600}
ROOT=/tmp/mailops-sendmail-bench
ACCOUNT=mobench
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$PUBLISHED/mailops-drop" ] || { echo "no published mailops-drop in $PUBLISHED" >&2; exit 1; }
. "$MTABENCH/lib.sh"

cleanup() {
    [ -n "${serve:-}" ] && kill -TERM "$serve" 2>/dev/null && wait "$serve" 2>/dev/null || true
    "$PUBLISHED/mailops" uninstall --root "$ROOT" --user $ACCOUNT --drop-group $ACCOUNT-drop --purge >/dev/null 2>&1 || true
    rm -rf "$ROOT"
    "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
mkdir -p "$ROOT"; chmod 755 "$ROOT"
"$PUBLISHED/mailops" install --root "$ROOT" --user $ACCOUNT --drop-group $ACCOUNT-drop --listen 127.0.0.1:2699 --hostname bench.test >/dev/null
setpriv --reuid=$ACCOUNT --regid=$ACCOUNT --init-groups -- "$ROOT/usr/lib/mailops/mailops" serve --config "$ROOT/etc/mailops/config.json" --no-delivery 2> "$ROOT/serve.log" &
serve=$!
PF_EXTRA="defer_transports=smtp" "$MTABENCH/postfix-up.sh" deliver >/dev/null
for _ in $(seq 100); do grep -q "serving on" "$ROOT/serve.log" && break; sleep 0.1; done

mo_sendmail() { "$ROOT/usr/sbin/sendmail" "$@"; }
pf_sendmail() { sendmail -C "$PF_CONF" "$@"; }
message() { printf 'To: user@bench.test\nSubject: bench %s\n\nOne small message, as a PHP mail() call sends.\n' "$1"; }
now() { date +%s%N; }
mo_queued() { find "$ROOT/var/spool/mailops/env" -type f | wc -l; }

echo "== latency of one sendmail -t -i, $N each, interleaved"
: > "$ROOT/mo.lat"; : > "$ROOT/pf.lat"
for i in $(seq "$N"); do
    t0=$(now); message "$i" | mo_sendmail -t -i; t1=$(now)
    message "$i" | pf_sendmail -t -i; t2=$(now)
    echo $(( (t1 - t0) / 1000 )) >> "$ROOT/mo.lat"; echo $(( (t2 - t1) / 1000 )) >> "$ROOT/pf.lat"
done
percentiles() { sort -n "$1" | awk '{a[NR]=$1} END { printf "median %.2f ms  p95 %.2f ms  (n=%d)\n", a[int((NR+1)/2)]/1000, a[int(NR*0.95+0.5)]/1000, NR }'; }
echo "mailops  $(percentiles "$ROOT/mo.lat")"
echo "postfix  $(percentiles "$ROOT/pf.lat")"

echo "== injection: $M messages from $U parallel submitters"
inject() {   # $1 = mo|pf ; prints msg/s
    local kind=$1 base start end per=$((M / U))
    if [ "$kind" = mo ]; then base=$(mo_queued); else base=$(pf_queue_count); fi
    start=$(now)
    for u in $(seq "$U"); do
        ( for i in $(seq "$per"); do message "$u-$i" | ${kind}_sendmail -t -i; done ) &
    done
    wait
    local handed=$(now)
    local deadline=$(( $(date +%s) + TIMEOUT )) count
    while :; do
        if [ "$kind" = mo ]; then count=$(( $(mo_queued) - base )); else count=$(( $(pf_queue_count) - base - $(find "$PF_QUEUE/maildrop" -type f | wc -l) )); fi
        [ "$count" -ge $((per * U)) ] && break
        [ "$(date +%s)" -lt "$deadline" ] || { echo "$kind: only $count queued before the timeout" >&2; return 1; }
        sleep 0.05
    done
    end=$(now)
    awk -v n=$((per * U)) -v ns=$((end - start)) -v hs=$((handed - start)) 'BEGIN { printf "%.0f msg/s (%d in %.2f s; the last sendmail exited at %.2f s)\n", n / (ns / 1e9), n, ns / 1e9, hs / 1e9 }'
}
echo "mailops  $(inject mo)"
echo "postfix  $(inject pf)"
