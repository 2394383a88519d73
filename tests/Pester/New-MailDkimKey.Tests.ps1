#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'New-MailDkimKey and Get-MailDkimKey' {
    BeforeEach {
        $queue = New-TestQueuePath
        Submit-TestMessage -QueuePath $queue | Out-Null
    }

    It 'has the pinned parameter surface' {
        (Get-Command New-MailDkimKey).Parameters.Keys | Should -Contain 'Domain'
        (Get-Command New-MailDkimKey).Parameters.Keys | Should -Contain 'Selector'
        (Get-Command New-MailDkimKey).Parameters['Algorithm'].Attributes.ValidValues | Should -Be @('Rsa', 'Ed25519')
        (Get-Command New-MailDkimKey).Parameters.Keys | Should -Contain 'WhatIf'
        (Get-Command Get-MailDkimKey).OutputType.Name | Should -Contain 'MailOps.Core.Dkim.DkimKey'
    }

    It 'makes RSA and Ed25519 keys whose records can be published, private on disk' {
        $rsa = New-MailDkimKey -Domain example.org -Selector s1 -QueuePath $queue
        $ed = New-MailDkimKey -Domain Example.ORG -Selector e1 -Algorithm Ed25519 -QueuePath $queue
        $rsa.RecordName | Should -Be 's1._domainkey.example.org'
        $rsa.TxtRecord | Should -Match '^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{390,}$'
        $ed.TxtRecord | Should -Match '^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$'
        if ($IsLinux) { (Get-Item $rsa.Path).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite') }
        (Get-MailDkimKey -QueuePath $queue).Selector | Should -Be @('e1', 's1')
        (Get-MailDkimKey -Domain example.org -QueuePath $queue | Where-Object Selector -eq 's1').TxtRecord | Should -Be $rsa.TxtRecord
    }

    It 'signs what is submitted for the domain, and refuses to overwrite a selector' {
        New-MailDkimKey -Domain example.com -Selector s1 -QueuePath $queue | Out-Null
        $m = Submit-MailMessage -QueuePath $queue -From 'alice@example.com' -To 'bob@example.org' -Subject 'signed' -Body 'hi'
        $path = Join-Path $TestDrive 'signed.eml'
        $m | Export-QueuedMail -Destination $path
        Get-Content $path -TotalCount 1 | Should -Match '^DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; c=relaxed/relaxed;'

        New-MailDkimKey -Domain example.com -Selector s1 -QueuePath $queue -ErrorAction SilentlyContinue -ErrorVariable err
        $err[0].FullyQualifiedErrorId | Should -BeLike 'DkimKeyExists*'
        New-MailDkimKey -Domain 'not a domain' -Selector s2 -QueuePath $queue -ErrorAction SilentlyContinue -ErrorVariable err2
        $err2[0].FullyQualifiedErrorId | Should -BeLike 'BadDkimName*'
    }
}
