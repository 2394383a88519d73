#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Stop-MailServer' {
    It 'has the pinned parameter surface' {
        $cmd = Get-Command Stop-MailServer
        foreach ($name in 'InputObject', 'Id', 'All', 'Force', 'PassThru', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
    }

    It 'stops a server from the pipeline and frees its port and queue' {
        $queue = New-TestQueuePath
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
        $port = $server.Endpoints[0].Port
        $stopped = $server | Stop-MailServer -PassThru
        $stopped.State | Should -Be 'Stopped'
        Get-MailServer | Where-Object Id -EQ $server.Id | Should -BeNullOrEmpty
        $again = Start-MailServer -QueuePath $queue -Listen "127.0.0.1:$port" -NoTls -NoDelivery
        $again | Stop-MailServer
    }

    It 'changes nothing with -WhatIf' {
        $server = Start-MailServer -QueuePath (New-TestQueuePath) -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            $server | Stop-MailServer -WhatIf
            $server.State | Should -Be 'Running'
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }

    It 'reports an unknown id as ServerNotFound' {
        Stop-MailServer -Id 987654 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ServerNotFound,*'
    }
}
