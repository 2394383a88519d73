#Requires -Version 7.4
# A running server's .NET events, as a script uses them: Register-ObjectEvent, then Wait-Event.
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'MailServer events' {
    It 'raises MessageReceived and MessageDelivered for a submitted message' {
        $queue = New-TestQueuePath
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName events.test -LocalDomain events.test -Mailbox 'bob@events.test'
        $null = Register-ObjectEvent -InputObject $server -EventName MessageReceived -SourceIdentifier 'mailops.received'
        $null = Register-ObjectEvent -InputObject $server -EventName MessageDelivered -SourceIdentifier 'mailops.delivered'
        try {
            $queued = Submit-MailMessage -QueuePath $queue -From 'alice@events.test' -To 'bob@events.test' -Subject 'events' -Body 'hi'
            $received = Wait-Event -SourceIdentifier 'mailops.received' -Timeout 20
            $received | Should -Not -BeNullOrEmpty
            $received.SourceEventArgs.Id | Should -Be $queued.Id
            $received.SourceEventArgs.Kind | Should -Be 'Received'
            $received.SourceEventArgs.Subject | Should -Be 'events'
            $delivered = Wait-Event -SourceIdentifier 'mailops.delivered' -Timeout 20
            $delivered | Should -Not -BeNullOrEmpty
            $delivered.SourceEventArgs.Id | Should -Be $queued.Id
            $delivered.SourceEventArgs.Recipients | Should -Contain 'bob@events.test'
            $delivered.SourceEventArgs.Status | Should -BeLike '2.*'
        }
        finally {
            Unregister-Event -SourceIdentifier 'mailops.received' -ErrorAction SilentlyContinue
            Unregister-Event -SourceIdentifier 'mailops.delivered' -ErrorAction SilentlyContinue
            Get-Event | Remove-Event
            $server | Stop-MailServer
        }
    }
}
