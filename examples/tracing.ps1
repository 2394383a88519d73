#Requires -Version 7.4
<#
.SYNOPSIS
    A tracing walk-through: follow messages from submission to delivery, hold and bounce.
.DESCRIPTION
    Uses a throwaway queue and local Maildir delivery, so it runs as is anywhere.
#>
param([string] $Root = (Join-Path ([IO.Path]::GetTempPath()) "mailops-trace-$PID"))
Import-Module (Join-Path $PSScriptRoot '..' 'MailOps.psd1')
$queue = Join-Path $Root 'queue'

# 1. Two messages: one for a local mailbox, one for a domain we will give up on.
$local = Submit-MailMessage -QueuePath $queue -Force -From 'alice@localhost' -To 'postmaster@localhost' -Subject 'Traced' -Body 'hello'
$remote = Submit-MailMessage -QueuePath $queue -Force -From 'alice@localhost' -To 'bob@gone.example' -Subject 'Doomed' -Body 'hello'
Get-MailQueue -QueuePath $queue | Format-Table

# 2. Hold the remote one while we look at it, then deliver the rest.
$remote | Suspend-QueuedMail
Send-QueuedMail -QueuePath $queue -Wait | Format-Table Id, Recipient, Outcome, Detail

# 3. The local message's journey: received, queued, attempted, delivered into the Maildir.
Trace-MailMessage -QueuePath $queue -Id $local.Id | Format-Table

# 4. By Message-ID too, after the message has left the queue.
Trace-MailMessage -QueuePath $queue -Id $local.MessageId | Select-Object Time, Event, Recipient, Detail

# 5. Give up on the held one: the sender gets a bounce, and the trace says so.
$remote | Remove-QueuedMail -Bounce -Reason 'gone.example is closed' -Confirm:$false
Trace-MailMessage -QueuePath $queue -Id $remote.Id | Format-Table Time, Event, Recipient, Status, Detail
Get-MailQueue -QueuePath $queue | Format-Table Id, Sender, Recipients, Subject
