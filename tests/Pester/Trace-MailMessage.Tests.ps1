#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Trace-MailMessage' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Trace-MailMessage
        foreach ($name in 'Id', 'QueuePath') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Queue.MailTraceEvent'
    }

    It 'traces a message from Get-MailQueue -Id' {
        $mail = Submit-TestMessage -QueuePath $queue
        $events = Get-MailQueue -QueuePath $queue -Id $mail.Id | Trace-MailMessage
        $events[0].Event | Should -Be 'Received'
        $events.Event | Should -Contain 'Queued'
        $events.Id | Select-Object -Unique | Should -Be $mail.Id
    }

    It 'traces every message of a pipeline, each in order, with one unknown reported' {
        $mails = 1..3 | ForEach-Object { Submit-TestMessage -QueuePath $queue }
        $mails[1] | Suspend-QueuedMail
        $events = @($mails | Trace-MailMessage)
        ($events.Id | Select-Object -Unique) | Should -Be $mails.Id
        ($events | Where-Object Id -eq $mails[1].Id).Event | Should -Be 'Received', 'Queued', 'Held'
        ($events | Where-Object Id -eq $mails[2].Id).Event | Should -Be 'Received', 'Queued'
        Trace-MailMessage -QueuePath $queue -Id $mails[0].Id, '<nobody@nowhere.example>' -ErrorVariable err -ErrorAction SilentlyContinue |
            Select-Object -ExpandProperty Id -Unique | Should -Be $mails[0].Id
        $err[0].FullyQualifiedErrorId | Should -BeLike 'TraceNotFound,*'
    }

    It 'finds a message by Message-ID after it left the queue' {
        $mail = Submit-TestMessage -QueuePath $queue
        $messageId = $mail.MessageId
        $mail | Remove-QueuedMail -Confirm:$false
        $events = Trace-MailMessage -QueuePath $queue -Id $messageId
        $events.Event | Should -Contain 'Removed'
    }

    It 'reports an unknown message as TraceNotFound' {
        Submit-TestMessage -QueuePath $queue | Out-Null
        Trace-MailMessage -QueuePath $queue -Id '<nobody@nowhere.example>' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'TraceNotFound,*'
    }
}
