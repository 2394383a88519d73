#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Get-MailDkimKey' {
    BeforeAll {
        $queue = New-TestQueuePath
        Submit-TestMessage -QueuePath $queue | Out-Null
        'a.example', 'b.example' | ForEach-Object { New-MailDkimKey -Domain $_ -Selector s1 -QueuePath $queue } | Out-Null
        New-MailDkimKey -Domain a.example -Selector s2 -Algorithm Ed25519 -QueuePath $queue | Out-Null
    }

    It 'lists every key, or those of the domains asked for' {
        (Get-MailDkimKey -QueuePath $queue).RecordName | Should -Be @('s1._domainkey.a.example', 's2._domainkey.a.example', 's1._domainkey.b.example')
        (Get-MailDkimKey b.example -QueuePath $queue).Selector | Should -Be 's1'
        @(Get-MailDkimKey nothing.example -QueuePath $queue) | Should -HaveCount 0
    }

    It 'takes domains from the pipeline by property name, and shows as a table' {
        ([pscustomobject]@{ Domain = 'a.example' } | Get-MailDkimKey -QueuePath $queue).Algorithm | Should -Be @('Rsa', 'Ed25519')
        (Get-MailDkimKey -QueuePath $queue | Format-Table | Out-String) | Should -Match 'Domain\s+Selector\s+Algorithm\s+TxtRecord'
    }
}
