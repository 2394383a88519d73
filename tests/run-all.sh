#!/usr/bin/env bash
# Every test of the project: the xunit suites (dotnet test MailOps.sln), then the Pester suite in
# real PowerShell. Installs PowerShell 7.6.9 (a .NET global tool) and Pester 5.9.1 (a NuGet
# package, restored into tests/Pester/tools/packages) when they are missing. Ends with one line
# "N passed, N failed, N skipped" over both suites; exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export PATH="$PATH:$HOME/.dotnet/tools"

status=0
# The programs as `mailops install` takes them (docs/install.md): the CLI, and the drop helper and
# the listing program published NativeAOT. The system-installation tests install these into a
# scratch root; the listing tests run the published mailops queue.
export MAILOPS_PUBLISHED="$PWD/artifacts/publish"
rm -rf "$MAILOPS_PUBLISHED"
if ! { dotnet publish src/MailOps.Cli -c Release -o "$MAILOPS_PUBLISHED" >/dev/null &&
       dotnet publish src/MailOps.Drop -c Release -r linux-x64 -o "$MAILOPS_PUBLISHED" >/dev/null &&
       dotnet publish src/MailOps.List -c Release -r linux-x64 -o "$MAILOPS_PUBLISHED" >/dev/null; }; then
  echo "cannot publish mailops, mailops-drop and mailops-list into $MAILOPS_PUBLISHED" >&2
  status=1
fi

log=$(mktemp)
dotnet test MailOps.sln 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# dotnet test prints one "Passed!/Failed! - Failed: F, Passed: P, Skipped: S" line per test assembly.
read -r passed failed skipped < <(awk '
  /(Passed|Failed)! +- +Failed:/ {
    for (i = 1; i <= NF; i++) {
      if ($i == "Failed:")  { gsub(",", "", $(i+1)); f += $(i+1) }
      if ($i == "Passed:")  { gsub(",", "", $(i+1)); p += $(i+1) }
      if ($i == "Skipped:") { gsub(",", "", $(i+1)); s += $(i+1) }
    }
  }
  END { print p+0, f+0, s+0 }' "$log")
rm -f "$log"
echo "xunit totals: passed=${passed} failed=${failed} skipped=${skipped}"

# PowerShell and Pester, installed when missing.
if ! command -v pwsh >/dev/null 2>&1; then
  echo "Installing PowerShell 7.6.9 (dotnet tool)"
  dotnet tool install --global PowerShell --version 7.6.9 >/dev/null || { echo "cannot install PowerShell" >&2; status=1; }
fi
pester=tests/Pester/tools/packages/pester/5.9.1/tools/Pester.psd1
if [ ! -f "$pester" ]; then
  echo "Restoring Pester 5.9.1 (NuGet package)"
  dotnet restore tests/Pester/tools/PesterRestore.csproj >/dev/null || { echo "cannot restore Pester" >&2; status=1; }
fi
# Also on PSModulePath (the current user's module folder), so `Import-Module Pester` by name
# finds it in any pwsh on this machine, as an installed module would be.
if command -v pwsh >/dev/null 2>&1 && [ -f "$pester" ]; then
  MAILOPS_PESTER_DIR="$PWD/$(dirname "$pester")" pwsh -NoProfile -NonInteractive -Command '
    if (-not (Get-Module -ListAvailable Pester | Where-Object Version -ge ([version]"5.9.1"))) {
      $target = Join-Path ([Environment]::GetFolderPath("LocalApplicationData")) "powershell/Modules/Pester/5.9.1"
      New-Item -ItemType Directory -Force -Path $target | Out-Null
      Copy-Item -Recurse -Force (Join-Path $env:MAILOPS_PESTER_DIR "*") $target
    }' || { echo "cannot put Pester on PSModulePath" >&2; status=1; }
fi

if command -v pwsh >/dev/null 2>&1 && [ -f "$pester" ]; then
  counts=$(mktemp)
  echo "Running the Pester suite (tests/Pester/*.Tests.ps1) in pwsh $(pwsh -NoProfile -Command '$PSVersionTable.PSVersion.ToString()')"
  MAILOPS_PESTER="$PWD/$pester" MAILOPS_PESTER_COUNTS="$counts" pwsh -NoProfile -NonInteractive -Command '
    $ErrorActionPreference = "Stop"
    Import-Module $env:MAILOPS_PESTER
    $c = New-PesterConfiguration
    $c.Run.Path = "tests/Pester"
    $c.Run.PassThru = $true
    $c.Output.Verbosity = "Detailed"
    $r = Invoke-Pester -Configuration $c
    "$($r.PassedCount) $($r.FailedCount + $r.FailedBlocksCount + $r.FailedContainersCount) $($r.SkippedCount)" | Set-Content $env:MAILOPS_PESTER_COUNTS
    if ($r.Result -ne "Passed") { exit 1 }' || status=1
  read -r pp pf ps < "$counts" || { pp=0; pf=1; ps=0; }
  rm -f "$counts"
  echo "Pester totals: passed=${pp} failed=${pf} skipped=${ps}"
  passed=$((passed + pp)); failed=$((failed + pf)); skipped=$((skipped + ps))
else
  echo "pwsh or Pester is missing: the Pester suite did not run" >&2
  status=1
fi

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then exit 1; fi
if [ "$passed" -eq 0 ]; then echo "no test ran" >&2; exit 1; fi
exit 0
