#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $queue = New-TestQueuePath
    $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery -HostName pester.test
}

AfterAll {
    Get-MailServer | Stop-MailServer -Force
}

Describe 'Start-MailServer' {
    It 'takes every configuration key as a parameter' {
        $cmd = Get-Command Start-MailServer
        foreach ($name in 'ConfigPath', 'QueuePath', 'Listen', 'HostName', 'LocalDomain', 'RelayDomain', 'VirtualDomain', 'Mailbox', 'Alias',
            'DefaultDomain', 'PlusDomain', 'RelayClient', 'MaildirRoot', 'SmartHost', 'SmartHostTls', 'SmartHostCredential', 'Route', 'RemotePort', 'DnsServer', 'ConcurrencyRemote',
            'ConcurrencyPerDomain', 'ConcurrencyLocal', 'QueueLifetime', 'RetrySchedule', 'MaxMessageSize', 'MaxRecipients', 'HoldIncoming',
            'TlsCertificatePath', 'TlsCertificatePassword', 'NoTls', 'NoDelivery', 'Wait', 'WhatIf', 'Confirm') {
            $cmd.Parameters.Keys | Should -Contain $name
        }
    }

    It 'returns a running MailServer on a random loopback port' {
        $server.State | Should -Be 'Running'
        $server.Endpoints[0].Address.ToString() | Should -Be '127.0.0.1'
        $server.Endpoints[0].Port | Should -BeGreaterThan 0
        $server.QueuePath | Should -Be $queue
    }

    It 'receives mail sent with MailKit' {
        Send-TestMailWithMailKit -Port $server.Endpoints[0].Port -From 'sender@example.com' -To 'rcpt@example.org' -Subject 'hello server'
        (Get-MailQueue -QueuePath $queue).Subject | Should -Contain 'hello server'
    }

    It 'runs several servers in one session' {
        $second = Start-MailServer -QueuePath (New-TestQueuePath) -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            $second.Endpoints[0].Port | Should -Not -Be $server.Endpoints[0].Port
            (Get-MailServer).Id | Should -Contain $second.Id
            (Get-MailServer).Id | Should -Contain $server.Id
        }
        finally {
            $second | Stop-MailServer -Force
        }
    }

    It 'refuses a queue that is already served (QueueInUse)' {
        { Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 } | Should -Throw -ErrorId 'QueueInUse,*'
    }

    It 'refuses an invalid setting (InvalidConfiguration)' {
        { Start-MailServer -QueuePath (New-TestQueuePath) -Listen 127.0.0.1:0 -RetrySchedule 'soon' } | Should -Throw -ErrorId 'InvalidConfiguration,*'
    }

    It 'starts nothing with -WhatIf' {
        $before = @(Get-MailServer).Count
        Start-MailServer -QueuePath (New-TestQueuePath) -Listen 127.0.0.1:0 -WhatIf
        @(Get-MailServer).Count | Should -Be $before
    }
}
