#Requires -Version 7.4
<#
.SYNOPSIS
    A contact form handler: submits the form as mail and lets the queue deliver it.
.DESCRIPTION
    Call Submit-ContactForm from your web handler (Pode, Universal Dashboard, an HttpListener...).
    It returns as soon as the message is durably queued; the mail server on the queue delivers it,
    retrying while the destination is down. The visitor's text cannot inject headers: a line
    break in a header value is refused (HeaderInjection). Run as is, it queues one sample form.
#>
param(
    [string] $QueuePath = (Join-Path ([IO.Path]::GetTempPath()) 'mailops-contact' 'queue'),
    [string] $To = 'sales@localhost'
)
Import-Module (Join-Path $PSScriptRoot '..' 'MailOps.psd1')

function Submit-ContactForm([string] $Name, [string] $Email, [string] $Message) {
    $body = "Name: $Name`nEmail: $Email`n`n$Message"
    try {
        # The visitor is the Reply-To, not the From: our domain sends, so SPF and DMARC pass.
        Submit-MailMessage -QueuePath $QueuePath -Force -From 'Web site <www@localhost>' -To $To -Subject "Contact form: $Name" -Body $body -Header @{ 'Reply-To' = $Email } -ErrorAction Stop
    }
    catch {
        Write-Warning "The form was not sent: $($_.Exception.Message) ($($_.FullyQualifiedErrorId))"
    }
}

$queued = Submit-ContactForm -Name 'Ada Lovelace' -Email 'ada@example.org' -Message 'Please call me back about the analytical engine.'
$queued | Format-Table Id, State, Recipients, Subject
# An attempt at header injection is refused, and nothing is queued:
Submit-ContactForm -Name "x`r`nBcc: victim@example.net" -Email 'spam@example.net' -Message 'spam'
"Queued in ${QueuePath}: $(@(Get-MailQueue -QueuePath $QueuePath).Count) message(s). Start a server on it to deliver: Start-MailServer -QueuePath $QueuePath -LocalDomain localhost -Mailbox sales@localhost"
