#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls
    $port = $server.Endpoints[0].Port
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Clear-Mailbox' {
    It 'removes one message, then the rest, between tests' {
        foreach ($i in 1..3) { Send-TestMailWithMailKit -Port $port -From 'app@app.test' -To "u$i@example.test" -Subject "clear $i" }
        (Wait-MailboxMessage -Server $server -Subject 'clear *' -Count 3 -Timeout 20).Count | Should -Be 3

        Get-MailboxMessage -Server $server -Address 'u2@example.test' | Remove-MailboxMessage
        (Get-MailboxMessage -Server $server).Subject | Should -Not -Contain 'clear 2'
        (Get-MailboxMessage -Server $server).Count | Should -Be 2

        Clear-Mailbox -Server $server -Address 'u1@*'
        (Get-MailboxMessage -Server $server).Subject | Should -Be @('clear 3')
        Clear-Mailbox -Server $server
        Get-MailboxMessage -Server $server | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $server.QueuePath 'capture') | Should -BeNullOrEmpty
    }

    It 'reads and clears messages delivered into local Maildirs the same way' {
        $queue = New-TestQueuePath
        $maildirs = Join-Path $TestDrive 'maildirs'
        $local = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName mx.local.test -LocalDomain local.test -Mailbox 'bob@local.test' -MaildirRoot $maildirs
        try {
            Send-TestMailWithMailKit -Port $local.Endpoints[0].Port -From 'alice@app.test' -To 'bob@local.test' -Subject 'to a Maildir'
            $m = Wait-MailboxMessage -Server $local -Address 'bob@local.test' -Timeout 20
            $m.Mailbox | Should -Be 'local.test/bob'
            $m.Sender | Should -Be 'alice@app.test'
            $m.Subject | Should -Be 'to a Maildir'
            Clear-Mailbox -Server $local
            Get-MailboxMessage -Server $local | Should -BeNullOrEmpty
        }
        finally {
            $local | Stop-MailServer -Force
        }
    }
}
