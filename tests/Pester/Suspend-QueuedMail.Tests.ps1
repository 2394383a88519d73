#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Suspend-QueuedMail' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Suspend-QueuedMail
        foreach ($name in 'Id', 'QueuePath', 'PassThru', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.Parameters['Id'].Attributes.ValueFromPipelineByPropertyName | Should -Contain $true
    }

    It 'holds the mail of one domain from a Get-MailQueue pipeline' {
        $org = Submit-TestMessage -QueuePath $queue -To 'bob@example.org'
        $net = Submit-TestMessage -QueuePath $queue -To 'carol@example.net'
        Get-MailQueue -QueuePath $queue -Domain example.org | Suspend-QueuedMail
        (Get-MailQueue -QueuePath $queue -Id $org.Id).State | Should -Be 'Held'
        (Get-MailQueue -QueuePath $queue -Id $net.Id).State | Should -Be 'Queued'
    }

    It 'returns the held mail with -PassThru' {
        $mail = Submit-TestMessage -QueuePath $queue
        ($mail | Suspend-QueuedMail -PassThru).State | Should -Be 'Held'
    }

    It 'changes nothing with -WhatIf' {
        Submit-TestMessage -QueuePath $queue | Out-Null
        Get-MailQueue -QueuePath $queue | Suspend-QueuedMail -WhatIf
        (Get-MailQueue -QueuePath $queue).State | Should -Be 'Queued'
    }

    It 'reports an unknown id as MessageNotFound' {
        Submit-TestMessage -QueuePath $queue | Out-Null
        Suspend-QueuedMail -QueuePath $queue -Id 1k0w010egvrybsqp -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'MessageNotFound,*'
    }
}
