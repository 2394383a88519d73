#Requires -Version 7.4
<#
.SYNOPSIS
    A scheduled job (cron, Task Scheduler) that flushes the queue and reports failures.
.DESCRIPTION
    Send-QueuedMail wakes the server that serves the queue, or, when none runs, delivers in this
    process. With -Wait it returns one result per recipient; the job reports what was not
    delivered and exits 1 when something bounced, 75 when mail is still waiting, else 0 (the
    same codes as `mailops flush`). Run as is, it flushes a sample queue with one local message.
#>
param(
    [string] $QueuePath = (Join-Path ([IO.Path]::GetTempPath()) 'mailops-flush' 'queue'),
    [string] $Report = (Join-Path ([IO.Path]::GetTempPath()) 'mailops-flush' 'failures.csv')
)
Import-Module (Join-Path $PSScriptRoot '..' 'MailOps.psd1')

if (-not (Test-Path $QueuePath)) {
    # A sample: one message for a local mailbox, so the example has something to deliver.
    Submit-MailMessage -QueuePath $QueuePath -Force -From 'cron@localhost' -To 'postmaster@localhost' -Subject 'Nightly report' -Body 'All good.' | Out-Null
}

$results = @(Send-QueuedMail -QueuePath $QueuePath -Wait)
$failures = @($results | Where-Object Outcome -NE 'Delivered')
$results | Format-Table Id, Recipient, Outcome, Status, Host, Detail
if ($failures) {
    $failures | Export-Csv -Path $Report -NoTypeInformation
    Write-Warning "$($failures.Count) recipient(s) not delivered; see $Report"
}
$exitCode = if ($failures.Outcome -contains 'Bounced') { 1 } elseif ($failures) { 75 } else { 0 }
exit $exitCode
