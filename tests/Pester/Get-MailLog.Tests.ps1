#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Get-MailLog' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Get-MailLog
        foreach ($name in 'Sender', 'Recipient', 'MessageId', 'Id', 'Event', 'Start', 'End', 'QueuePath') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Queue.MailLogEntry'
    }

    It 'finds a delivered message by recipient after it left the queue, newest first, grouped by message' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName log.test -LocalDomain log.test -Mailbox 'bob@log.test', 'carol@log.test'
        try {
            $first = Submit-MailMessage -QueuePath $queue -From 'alice@log.test' -To 'bob@log.test' -Subject 'one' -Body 'hi'
            $second = Submit-MailMessage -QueuePath $queue -From 'dave@log.test' -To 'carol@log.test' -Subject 'two' -Body 'hi'
            $deadline = (Get-Date).AddSeconds(20)
            while ((Get-MailQueue -QueuePath $queue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Get-MailQueue -QueuePath $queue | Should -BeNullOrEmpty
        }
        finally { $server | Stop-MailServer }

        $bob = Get-MailLog -QueuePath $queue -Recipient 'BOB@*'
        $bob.Id | Select-Object -Unique | Should -Be $first.Id
        $bob[0].Event | Should -Be 'Delivered'
        $bob[-1].Event | Should -Be 'Received'
        $bob[-1].Sender | Should -Be 'alice@log.test'
        $bob[-1].Subject | Should -Be 'one'
        ($bob | Where-Object Event -eq 'Attempt').Delays.Transmit | Should -Not -BeNullOrEmpty

        (Get-MailLog -QueuePath $queue -Sender 'dave@log.test' -Event Delivered).Recipient | Should -Be 'carol@log.test'
        (Get-MailLog -QueuePath $queue -Event Received | Group-Object Id).Count | Should -Be 2
        Get-MailLog -QueuePath $queue -Id $second.Id | ForEach-Object Id | Select-Object -Unique | Should -Be $second.Id
        Get-MailLog -QueuePath $queue -Start (Get-Date).AddMinutes(5) | Should -BeNullOrEmpty
        Get-MailLog -QueuePath $queue -Recipient 'nobody@log.test' | Should -BeNullOrEmpty
    }

    It 'records who held and released a message' {
        $mail = Submit-TestMessage -QueuePath $queue
        $mail | Suspend-QueuedMail | Out-Null
        $mail | Resume-QueuedMail | Out-Null
        $held = Get-MailLog -QueuePath $queue -Id $mail.Id -Event Held
        $held.User | Should -BeLike "$([Environment]::UserName) via *"
        (Get-MailLog -QueuePath $queue -Id $mail.Id)[0].Event | Should -Be 'Released'
    }

    It 'reports a missing queue as QueueNotFound' {
        Get-MailLog -QueuePath (Join-Path $queue 'nothing') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QueueNotFound,*'
    }
}
