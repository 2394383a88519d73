#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $queue = New-TestQueuePath
    $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Get-MailServer' {
    It 'has the pinned parameter surface' {
        (Get-Command Get-MailServer).Parameters.Keys | Should -Contain 'Id'
        (Get-Command Get-MailServer).OutputType.Name | Should -Contain 'MailOps.Core.Hosting.MailServer'
    }

    It 'lists the servers of the session' {
        (Get-MailServer).Id | Should -Contain $server.Id
        (Get-MailServer -Id $server.Id).QueuePath | Should -Be $queue
    }

    It 'pipes a server to Get-MailQueue by its QueuePath' {
        Submit-TestMessage -QueuePath $queue -Subject 'via server' | Out-Null
        (Get-MailServer -Id $server.Id | Get-MailQueue).Subject | Should -Contain 'via server'
    }

    It 'keeps the server log' {
        $server.Log.Lines.Message -join "`n" | Should -Match 'serving on 127\.0\.0\.1:'
    }

    It 'counts what a server received and delivered, and serves the same counts to Prometheus' {
        $port = Get-FreePort
        $countingQueue = New-TestQueuePath
        $counting = Start-MailServer -QueuePath $countingQueue -Listen 127.0.0.1:0 -NoTls -HostName count.test -LocalDomain count.test -Mailbox 'bob@count.test' -Metrics "127.0.0.1:$port"
        try {
            $counting.MetricsUrl | Should -Be "http://127.0.0.1:$port/metrics"
            foreach ($i in 1..2) { Send-TestMailWithMailKit -Port $counting.Endpoints[0].Port -From 'alice@count.test' -To 'bob@count.test' -Subject "count $i" }
            $deadline = (Get-Date).AddSeconds(20)
            while ($counting.Delivered -lt 2 -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
            $shown = Get-MailServer -Id $counting.Id
            $shown.Received | Should -Be 2
            $shown.Delivered | Should -Be 2
            $shown.Bounced | Should -Be 0
            ($shown | Format-Table | Out-String) | Should -Match 'Delivered'
            $scraped = (Invoke-WebRequest -Uri $counting.MetricsUrl -UseBasicParsing).Content
            $scraped | Should -Match 'mailops_recipients_delivered_total\{route="local"\} 2'
            $scraped | Should -Match 'mailops_messages_received_total\{origin="smtp"\} 2'
        }
        finally { $counting | Stop-MailServer }
    }

    It 'reports an unknown id as ServerNotFound' {
        Get-MailServer -Id 987654 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ServerNotFound,*'
    }
}
