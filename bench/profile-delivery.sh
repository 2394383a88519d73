#!/usr/bin/env bash
# Where delivery's time goes (issue 17): N preloaded 4 KiB messages delivered by `mailops serve`
# to Postfix's smtp-sink (SmartHost, 20 connections) under dotnet-trace's sampled thread-time
# profile; bench/speedscope-top.py then lists the frames that used the CPU. Bounded: N, TIMEOUT.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}; TIMEOUT=${TIMEOUT:-300}; DIR=${DIR:-/tmp/mailops-profile}
export PATH="$PATH:$HOME/.dotnet/tools"
command -v dotnet-trace >/dev/null || dotnet tool install --global dotnet-trace --version 10.0.750501 >/dev/null
rm -rf "$DIR"; mkdir -p "$DIR"
sink_pid=""
trap '[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; rm -rf "$DIR/q"' EXIT
dotnet build -c Release -v q -nologo bench/MailOps.Bench >/dev/null
dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null
mailops=$PWD/src/MailOps.Cli/bin/Release/net10.0/mailops
sink=$(( 30000 + RANDOM % 20000 )); listen=$(( sink + 1 ))
dotnet bench/MailOps.Bench/bin/Release/net10.0/mailops-bench.dll fill --queue "$DIR/q" --count "$N" --writers 20
cat > "$DIR/config.json" <<JSON
{ "HostName": "mx.profile.test", "SmartHost": "127.0.0.1:$sink", "Listen": ["127.0.0.1:$listen"], "Tls": { "Enabled": false },
  "InboundAuthentication": "Off", "ConcurrencyRemote": 20, "ConcurrencyPerDomain": 20, "ConcurrencyPerDomainMax": 20 }
JSON
timeout "$TIMEOUT" /usr/sbin/smtp-sink -c -u nobody "127.0.0.1:$sink" 1000 > "$DIR/sink.out" 2>&1 &
sink_pid=$!
sleep 1
timeout "$TIMEOUT" dotnet-trace collect --profile dotnet-sampled-thread-time --format speedscope -o "$DIR/trace.nettrace" \
    -- "$mailops" serve --config "$DIR/config.json" --queue "$DIR/q" > "$DIR/trace.out" 2>&1 &
start=$(date +%s.%N)
for _ in $(seq $((TIMEOUT * 10))); do [ "$(ls "$DIR/q/env" | wc -l)" -eq 0 ] && break; sleep 0.1; done
echo "delivered $N in $(echo "$(date +%s.%N) - $start" | bc) s (server start included, under the profiler)"
pkill -TERM -f "serve --config $DIR/config.json" || true
for _ in $(seq 300); do [ -s "$DIR/trace.speedscope.json" ] && grep -q "Conversion complete" "$DIR/trace.out" && break; sleep 1; done
/usr/bin/python3 bench/speedscope-top.py "$DIR/trace.speedscope.json" 25
