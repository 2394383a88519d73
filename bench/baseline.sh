#!/usr/bin/env bash
# Sourced by the benchmarks: with BASELINE=<git revision>, builds that revision's `mailops`
# (Release) in a scratch worktree and sets $baseline_mailops, so a benchmark can run the
# version before a change beside the current one and Postfix, repetitions interleaved in one
# run ("no slower than before" is then measured, not remembered). Without BASELINE it does nothing.
baseline_mailops=""
if [ -n "${BASELINE:-}" ]; then
    baseline_dir=/tmp/mailops-baseline-$(git rev-parse --short "$BASELINE")
    if [ ! -x "$baseline_dir/src/MailOps.Cli/bin/Release/net10.0/mailops" ]; then
        rm -rf "$baseline_dir"; git worktree prune
        git worktree add --detach "$baseline_dir" "$BASELINE" >/dev/null 2>&1 || { echo "cannot check out $BASELINE" >&2; exit 1; }
        (cd "$baseline_dir" && dotnet build -c Release -v q -nologo src/MailOps.Cli >/dev/null) || { echo "cannot build $BASELINE" >&2; exit 1; }
    fi
    baseline_mailops=$baseline_dir/src/MailOps.Cli/bin/Release/net10.0/mailops
fi
