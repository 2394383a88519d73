#!/usr/bin/env bash
# A walk through the queue with the mailops CLI: submit as a program would (sendmail -t -i),
# list, hold, trace, remove. Uses a throw-away queue; run from the repository after a build:
#   dotnet build MailOps.sln && examples/queue-tour.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mailops=src/MailOps.Cli/bin/Debug/net10.0/mailops
[ -x "$mailops" ] || { echo "build first: dotnet build MailOps.sln" >&2; exit 1; }
export MAILOPS_QUEUE=$(mktemp -d)/queue
trap 'rm -rf "$(dirname "$MAILOPS_QUEUE")"' EXIT

echo "== submit two messages: one as PHP's mail() would (sendmail -t -i), one with mailops submit"
printf 'To: visitor@example.org\nSubject: Thanks for your message\n\nWe will answer soon.\n' \
  | "$mailops" sendmail -t -i
id=$(printf 'Subject: Nightly report\n\nAll jobs ran.\n' | "$mailops" submit -f cron@example.com ops@example.net)
echo "queued as $id"

echo "== the queue"
"$mailops" queue

echo "== hold the report, list held mail as JSON"
"$mailops" hold "$id"
"$mailops" queue --state Held --json

echo "== its journey so far"
"$mailops" release "$id"
"$mailops" trace "$id"

echo "== remove it; the trace outlives it"
"$mailops" remove "$id"
"$mailops" trace "$id"
"$mailops" queue
