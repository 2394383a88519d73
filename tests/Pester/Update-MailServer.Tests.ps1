#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    function Set-TestConfig([string] $Path, [int[]] $Ports, [string[]] $Mailboxes) {
        @{
            HostName = 'update.test'; LocalDomains = @('update.test'); Mailboxes = $Mailboxes
            Listen = @($Ports | ForEach-Object { "127.0.0.1:$_" }); InboundAuthentication = 'Off'
        } | ConvertTo-Json | Set-Content -Path $Path
    }
}

Describe 'Update-MailServer' {
    It 'has the pinned parameter surface' {
        $cmd = Get-Command Update-MailServer
        foreach ($name in 'InputObject', 'Id', 'PassThru', 'WhatIf') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Hosting.MailServer'
    }

    It 'applies a new listener and mailbox without a restart, and refuses a broken configuration' {
        $queue = New-TestQueuePath
        $config = Join-Path $TestDrive 'update.json'
        $first = Get-FreePort
        $second = Get-FreePort
        Set-TestConfig -Path $config -Ports $first -Mailboxes 'bob@update.test'
        $server = Start-MailServer -ConfigPath $config -QueuePath $queue -NoTls
        try {
            { Send-TestMailWithMailKit -Port $first -From 'a@client.test' -To 'carol@update.test' -Subject 'before' } | Should -Throw '*5.1.1*'

            Set-TestConfig -Path $config -Ports $first, $second -Mailboxes 'bob@update.test', 'carol@update.test'
            $updated = $server | Update-MailServer -PassThru
            $updated.Endpoints.Port | Should -Be @($first, $second)
            Send-TestMailWithMailKit -Port $second -From 'a@client.test' -To 'carol@update.test' -Subject 'after'
            (Get-MailLog -QueuePath $queue -Recipient 'carol@update.test' -Event Received).Subject | Should -Be 'after'

            Set-Content -Path $config -Value '{ "Listen": ["not an endpoint"] }'
            Update-MailServer -Id $server.Id -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
            $server.Endpoints.Port | Should -Be @($first, $second)
            Send-TestMailWithMailKit -Port $second -From 'a@client.test' -To 'carol@update.test' -Subject 'still'
        }
        finally { $server | Stop-MailServer -Force }
    }

    It 'reports an unknown id as ServerNotFound' {
        Update-MailServer -Id 987654 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ServerNotFound,*'
    }
}
