#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Resume-QueuedMail' {
    BeforeEach {
        $queue = New-TestQueuePath
        $mail = Submit-TestMessage -QueuePath $queue
        $mail | Suspend-QueuedMail
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Resume-QueuedMail
        foreach ($name in 'Id', 'QueuePath', 'PassThru', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
    }

    It 'releases held mail from the pipeline' {
        Get-MailQueue -QueuePath $queue -State Held | Resume-QueuedMail
        (Get-MailQueue -QueuePath $queue -Id $mail.Id).State | Should -Be 'Queued'
        (Trace-MailMessage -QueuePath $queue -Id $mail.Id).Event | Should -Contain 'Released'
    }

    It 'changes nothing with -WhatIf' {
        $mail | Resume-QueuedMail -WhatIf
        (Get-MailQueue -QueuePath $queue -Id $mail.Id).State | Should -Be 'Held'
    }

    It 'reports an unknown id as MessageNotFound' {
        Resume-QueuedMail -QueuePath $queue -Id 1k0w010egvrybsqp -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'MessageNotFound,*'
    }
}
