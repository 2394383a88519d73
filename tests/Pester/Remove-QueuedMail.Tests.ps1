#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Remove-QueuedMail' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface and High impact' {
        $cmd = Get-Command Remove-QueuedMail
        foreach ($name in 'Id', 'QueuePath', 'Bounce', 'Reason', 'ConfigPath', 'PassThru', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact | Should -Be 'High'
    }

    It 'changes nothing with -WhatIf' {
        Submit-TestMessage -QueuePath $queue | Out-Null
        Get-MailQueue -QueuePath $queue | Remove-QueuedMail -WhatIf
        Get-MailQueue -QueuePath $queue | Should -HaveCount 1
    }

    It 'removes mail from the pipeline' {
        $mail = Submit-TestMessage -QueuePath $queue
        $mail | Remove-QueuedMail -Confirm:$false
        Get-MailQueue -QueuePath $queue | Should -BeNullOrEmpty
        (Trace-MailMessage -QueuePath $queue -Id $mail.Id).Event | Should -Contain 'Removed'
    }

    It 'bounces to the sender with -Bounce' {
        $mail = Submit-TestMessage -QueuePath $queue -To 'bob@example.org'
        $mail | Remove-QueuedMail -Bounce -Reason 'domain closed' -Confirm:$false
        $bounce = @(Get-MailQueue -QueuePath $queue)
        $bounce | Should -HaveCount 1
        $bounce[0].Sender | Should -Be '<>'
        $bounce[0].Recipients | Should -Be @('alice@example.com')
        $text = Get-Content ($bounce[0] | Export-QueuedMail -Destination $TestDrive -Force).FullName -Raw
        $text | Should -Match 'multipart/report'
        $text | Should -Match 'domain closed'
    }

    It 'reports an unknown id as MessageNotFound' {
        Submit-TestMessage -QueuePath $queue | Out-Null
        Remove-QueuedMail -QueuePath $queue -Id 1k0w010egvrybsqp -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'MessageNotFound,*'
    }
}
