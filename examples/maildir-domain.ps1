#Requires -Version 7.4
<#
.SYNOPSIS
    A server for one domain with Maildir delivery.
.DESCRIPTION
    Accepts mail for example.test on 127.0.0.1:2525 and delivers it to
    <root>/maildir/example.test/<user>/new. Unknown users are refused at RCPT (550 5.1.1);
    info@ is an alias of alice. Ctrl+C stops the server gracefully. Try it from another shell:
      swaks --server 127.0.0.1:2525 --to alice@example.test
#>
param(
    [string] $Root = (Join-Path ([IO.Path]::GetTempPath()) 'mailops-domain'),
    [string] $Listen = '127.0.0.1:2525'
)
Import-Module (Join-Path $PSScriptRoot '..' 'MailOps.psd1')

Start-MailServer -QueuePath (Join-Path $Root 'queue') -MaildirRoot (Join-Path $Root 'maildir') `
    -Listen $Listen -HostName mx.example.test -LocalDomain example.test `
    -Mailbox 'alice@example.test', 'bob@example.test' -Alias @{ 'info@example.test' = 'alice@example.test' } `
    -Wait -Verbose
