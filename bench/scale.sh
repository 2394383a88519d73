#!/usr/bin/env bash
# Scale (issue 17): a server holding 10,000, 100,000 and (with SIZES) 1,000,000 queued messages,
# MailOps and Postfix side by side where Postfix can be measured (sizes up to PF_MAX).
# For each size and MTA:
#  - listing: wall time and peak resident set of listing the whole queue as JSON (`mailops queue
#    --json`, `postqueue -j`; Postfix's showq daemon does its reading), output discarded;
#  - first delivery: from starting `mailops serve` over the preloaded queue (sweep, index check and
#    first scan included), or from `postsuper -H ALL; postqueue -f` on the running Postfix, until
#    smtp-sink has counted the first message;
#  - delivery rate: what smtp-sink counted after that first message, over WINDOW seconds or until
#    the queue was delivered when that came first;
#  - resident memory: peak resident set (VmHWM) of the MailOps server, or of Postfix's qmgr, at
#    the end of the window.
# Preloads: MailOps through mailops-bench fill (the queue store's own commit path, 20 writers),
# Postfix through smtpd into hold (smtp-source, 20 sessions). Messages are 4 KiB.
# Writes bench/scale.tsv and, with bench/scale-plot.py, bench/scale.png.
# Bounded: every wait has TIMEOUT; the delivery window is WINDOW seconds. Loopback only.
set -uo pipefail
cd "$(dirname "$0")/.."
MTABENCH=${MTABENCH:-$(cd ../shared/tools/mtabench && pwd)}
. "$MTABENCH/lib.sh"
SIZES=${SIZES:-10000 100000}; PF_MAX=${PF_MAX:-100000}; WINDOW=${WINDOW:-20}; TIMEOUT=${TIMEOUT:-1800}
SIZE=4096; PORT=${PORT:-2610}
DIR=${DIR:-/tmp/mailops-scale}
OUT=${OUT:-bench/scale.tsv}
rm -rf "$DIR"; mkdir -p "$DIR"
# mailops as installed: published, with mailops-list (NativeAOT) beside it, which `mailops queue` becomes.
dotnet publish -c Release -v q -nologo src/MailOps.Cli -o "$DIR/bin" >/dev/null || die "publish failed"
dotnet publish -c Release -v q -nologo -r linux-x64 src/MailOps.List -o "$DIR/bin" >/dev/null || die "publish failed"
dotnet build -c Release -v q -nologo bench/MailOps.Bench >/dev/null || die "build failed"
mailops=$DIR/bin/mailops
bench="dotnet $PWD/bench/MailOps.Bench/bin/Release/net10.0/mailops-bench.dll"
cat > "$DIR/config.json" <<JSON
{ "HostName": "mailops.scale.test", "SmartHost": "127.0.0.1:$SINK_PORT", "Listen": ["127.0.0.1:$PORT"],
  "Tls": { "Enabled": false }, "ConcurrencyRemote": 20, "ConcurrencyPerDomain": 20, "ConcurrencyPerDomainMax": 20 }
JSON

serve=""
cleanup() {
    [ -n "$serve" ] && { kill -TERM "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
    "$MTABENCH/sink.sh" stop "$SINK_PORT" >/dev/null 2>&1
    "$MTABENCH/postfix-down.sh" --purge >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT
"$MTABENCH/sink.sh" start "$SINK_PORT" >/dev/null || die "sink failed"
sinkcount() { "$MTABENCH/sink.sh" count "$SINK_PORT"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# listing <label> <command...>: "seconds peak_kb" of one listing, output discarded
listing() {
    /usr/bin/time -f "%e %M" -o "$DIR/time.out" "$@" > /dev/null 2> "$DIR/listing.err" || { echo "listing failed: $(tail -1 "$DIR/listing.err")" >&2; echo "0 0"; return; }
    cat "$DIR/time.out"
}

# window <c0> <t0> <n>: waits for the first message after c0 (clock from t0), then counts for
# WINDOW seconds or until all n are delivered; prints "first_seconds rate"
window() {
    local c0=$1 t0=$2 n=$3 end t1 c1 t2 c2 stop
    end=$(( $(date +%s) + TIMEOUT ))
    while [ "$(sinkcount)" -le "$c0" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.02; done
    t1=$(now); c1=$(sinkcount)
    stop=$(awk -v t="$t1" -v w="$WINDOW" 'BEGIN{printf "%.3f", t+w}')
    while awk -v a="$(now)" -v b="$stop" 'BEGIN{exit !(a<b)}' && [ $(( $(sinkcount) - c0 )) -lt "$n" ]; do sleep 0.05; done
    t2=$(now); c2=$(sinkcount)
    echo "$(elapsed "$t0" "$t1") $(rate $((c2 - c1)) "$(elapsed "$t1" "$t2")")"
}

echo "# scale $(date -u +%FT%TZ) sizes=$SIZES window=${WINDOW}s -> smtp-sink 127.0.0.1:$SINK_PORT; $(conditions)"
printf 'mta\tqueued\tlist_s\tlist_peak_mb\tfirst_delivery_s\trate_msg_s\tserver_peak_mb\n' > "$OUT"
for n in $SIZES; do
    # ---- MailOps
    rm -rf "$DIR/q"
    $bench fill --queue "$DIR/q" --count "$n" --writers 20 --size "$SIZE" > /dev/null || die "fill failed"
    [ "$(ls "$DIR/q/env" | wc -l)" -eq "$n" ] || die "fill: queue does not hold $n"
    sync; sleep 3
    read -r ls_s ls_kb < <(listing "$mailops" queue --json --queue "$DIR/q")
    c0=$(sinkcount); t0=$(now)
    "$mailops" serve --config "$DIR/config.json" --queue "$DIR/q" 2> "$DIR/serve.log" &
    serve=$!
    read -r first rt < <(window "$c0" "$t0" "$n")
    mem=$(hwm_kb "$serve")
    kill -TERM "$serve"; wait "$serve" 2>/dev/null; serve=""
    printf 'mailops\t%d\t%s\t%d\t%s\t%s\t%d\n' "$n" "$ls_s" $((ls_kb / 1024)) "$first" "$rt" $((mem / 1024)) | tee -a "$OUT"
    rm -rf "$DIR/q"

    # ---- Postfix
    [ "$n" -le "$PF_MAX" ] || continue
    pf_running || "$MTABENCH/postfix-up.sh" hold > /dev/null || die "postfix-up failed"
    "$MTABENCH/postfix-mode.sh" hold > /dev/null
    pf_super -d ALL > /dev/null 2>&1
    timeout "$TIMEOUT" smtp-source -s 20 -m "$n" -l "$SIZE" -d -M client.bench.test \
        -f bench@client.bench.test -t user@bench.test "127.0.0.1:$PF_PORT" > /dev/null 2>&1 || die "postfix preload failed"
    [ "$(pf_hold_count)" -eq "$n" ] || die "postfix hold queue has $(pf_hold_count), expected $n"
    sync; sleep 3
    # postqueue -j lists what is not on hold too; hold is the whole queue here, as above
    read -r ls_s ls_kb < <(listing postqueue -c "$PF_CONF" -j)
    c0=$(sinkcount); t0=$(now)
    pf_super -H ALL > /dev/null 2>&1; pf_queue -f
    read -r first rt < <(window "$c0" "$t0" "$n")
    qmgr=$(pgrep -u postfix -x qmgr | head -1)
    mem=$(hwm_kb "$qmgr")
    printf 'postfix\t%d\t%s\t%d\t%s\t%s\t%d\n' "$n" "$ls_s" $((ls_kb / 1024)) "$first" "$rt" $((mem / 1024)) | tee -a "$OUT"
    "$MTABENCH/postfix-down.sh" --purge > /dev/null 2>&1
done
echo "# after: $(conditions)"
/usr/bin/python3 -c "import matplotlib" 2>/dev/null || { apt-get install -y -qq python3-matplotlib > /dev/null 2>&1 || echo "no python3-matplotlib: no plot"; }
/usr/bin/python3 bench/scale-plot.py "$OUT" bench/scale.png && echo "plot: bench/scale.png"
