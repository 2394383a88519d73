#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Send-QueuedMail' {
    BeforeEach {
        $root = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
        $queue = Join-Path $root 'queue'
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Send-QueuedMail
        foreach ($name in 'Id', 'Domain', 'QueuePath', 'ConfigPath', 'Wait', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Delivery.FlushResult'
    }

    It 'delivers in this session when no server runs (Get-MailQueue | Send-QueuedMail -Wait)' {
        $mail = Submit-TestMessage -QueuePath $queue -To 'postmaster@localhost'
        $results = @(Get-MailQueue -QueuePath $queue | Send-QueuedMail -Wait)
        $results | Should -HaveCount 1
        $results[0].Id | Should -Be $mail.Id
        $results[0].Outcome | Should -Be 'Delivered'
        Get-MailQueue -QueuePath $queue | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $root 'maildir' 'localhost' 'postmaster' 'new') | Should -HaveCount 1
    }

    It 'wakes a running server' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls
        try {
            Submit-TestMessage -QueuePath $queue -To 'postmaster@localhost' | Out-Null
            Send-QueuedMail -QueuePath $queue -Wait | Out-Null
            $deadline = (Get-Date).AddSeconds(20)
            while ((Get-MailQueue -QueuePath $queue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Get-MailQueue -QueuePath $queue | Should -BeNullOrEmpty
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }

    It 'changes nothing with -WhatIf' {
        Submit-TestMessage -QueuePath $queue -To 'postmaster@localhost' | Out-Null
        Send-QueuedMail -QueuePath $queue -WhatIf
        Get-MailQueue -QueuePath $queue | Should -HaveCount 1
    }

    It 'reports a missing queue as QueueNotFound' {
        Send-QueuedMail -QueuePath (Join-Path $TestDrive 'nowhere') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QueueNotFound,*'
    }
}
