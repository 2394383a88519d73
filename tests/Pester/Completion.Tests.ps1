#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1

    function Complete([string] $Line) {
        (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches
    }
}

Describe 'Argument completion' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'completes -Id with the queued ids, and a prefix narrows them' {
        $a = Submit-TestMessage -QueuePath $queue -To 'bob@example.org'
        $b = Submit-TestMessage -QueuePath $queue -To 'carol@example.net'
        (Complete "Get-MailQueue -QueuePath '$queue' -Id ").CompletionText | Should -Be @($a.Id, $b.Id)
        (Complete "Suspend-QueuedMail -QueuePath '$queue' -Id $($b.Id.Substring(0, 15))").CompletionText | Should -Be $b.Id
        ((Complete "Send-QueuedMail -QueuePath '$queue' -Id ").ToolTip -join ' ') | Should -Match 'bob@example.org'
    }

    It 'completes -Domain with the destinations that have mail waiting' {
        Submit-TestMessage -QueuePath $queue -To 'bob@example.org' | Out-Null
        Submit-TestMessage -QueuePath $queue -To 'carol@example.net' | Out-Null
        (Complete "Get-MailQueue -QueuePath '$queue' -Domain example.o").CompletionText | Should -Be 'example.org'
        (Complete "Send-QueuedMail -QueuePath '$queue' -Domain ").CompletionText | Sort-Object | Should -Be @('example.net', 'example.org')
    }

    It 'completes -State with its names' {
        (Complete 'Get-MailQueue -State De').CompletionText | Should -Be 'Deferred'
    }

    It 'completes server ids, and -QueuePath with the queues of running servers' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            (Complete 'Get-MailServer -Id ').CompletionText | Should -Contain "$($server.Id)"
            (Complete "Get-MailQueue -QueuePath $($queue.Substring(0, $queue.Length - 4))").CompletionText | Should -Contain $queue
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }
}
