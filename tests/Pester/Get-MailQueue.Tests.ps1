#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Get-MailQueue' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Get-MailQueue
        foreach ($name in 'Id', 'State', 'Sender', 'Recipient', 'Domain', 'OlderThan', 'Summary', 'QueuePath') {
            $cmd.Parameters.Keys | Should -Contain $name
        }
        $cmd.Parameters['QueuePath'].Attributes.ValueFromPipelineByPropertyName | Should -Contain $true
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Queue.QueuedMail'
    }

    It 'lists submitted mail with its properties' {
        $submitted = Submit-TestMessage -QueuePath $queue -Subject 'from pester'
        $mail = @(Get-MailQueue -QueuePath $queue)
        $mail | Should -HaveCount 1
        $mail[0].Id | Should -Be $submitted.Id
        $mail[0].State | Should -Be 'Queued'
        $mail[0].Subject | Should -Be 'from pester'
        $mail[0].Recipients | Should -Be @('bob@example.org')
        $mail[0].QueuePath | Should -Be $queue
    }

    It 'filters by <Name>' -TestCases @(
        @{ Name = 'Domain'; Filter = @{ Domain = 'example.net' } }
        @{ Name = 'Recipient'; Filter = @{ Recipient = 'carol@*' } }
        @{ Name = 'Sender'; Filter = @{ Sender = 'ALICE@example.com' } }
    ) {
        Submit-TestMessage -QueuePath $queue -To 'bob@example.org' | Out-Null
        $carol = Submit-TestMessage -QueuePath $queue -To 'carol@example.net'
        $found = @(Get-MailQueue -QueuePath $queue @Filter)
        if ($Name -eq 'Sender') { $found | Should -HaveCount 2 }
        else { $found.Id | Should -Be @($carol.Id) }
    }

    It 'filters by state and age' {
        $held = Submit-TestMessage -QueuePath $queue
        Submit-TestMessage -QueuePath $queue | Out-Null
        $held | Suspend-QueuedMail
        (Get-MailQueue -QueuePath $queue -State Held).Id | Should -Be $held.Id
        Get-MailQueue -QueuePath $queue -OlderThan (New-TimeSpan -Days 1) | Should -BeNullOrEmpty
    }

    It 'summarises by destination domain' {
        Submit-TestMessage -QueuePath $queue -To 'a@example.org' | Out-Null
        Submit-TestMessage -QueuePath $queue -To 'b@example.org' | Out-Null
        Submit-TestMessage -QueuePath $queue -To 'c@example.net' | Out-Null
        $summary = Get-MailQueue -QueuePath $queue -Summary
        ($summary | Where-Object Domain -EQ 'example.org').Recipients | Should -Be 2
        ($summary | Where-Object Domain -EQ 'example.net').Messages | Should -Be 1
        ($summary | Where-Object Domain -EQ 'example.org').Ages[0] | Should -Be 2
        $shape = $summary | Format-Table -View Age | Out-String
        $shape | Should -Match '1280\+'
        $shape | Should -Match 'example\.org\s+2\s+2\s+0'
    }

    It 'reports a missing queue as QueueNotFound and does not create it' {
        $missing = Join-Path $TestDrive 'nowhere'
        Get-MailQueue -QueuePath $missing -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QueueNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Test-Path $missing | Should -BeFalse
    }

    It 'shows mail received by a server started on a random loopback port' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            Send-TestMailWithMailKit -Port $server.Endpoints[0].Port -From 'sender@example.com' -To 'rcpt@example.org' -Subject 'over smtp'
            $mail = @($server | Get-MailQueue)
            $mail | Should -HaveCount 1
            $mail[0].Subject | Should -Be 'over smtp'
            $mail[0].Sender | Should -Be 'sender@example.com'
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }

    It 'matches -Id with wildcards and reports a literal id that is not queued as MessageNotFound' {
        $a = Submit-TestMessage -QueuePath $queue -To 'bob@example.org'
        $b = Submit-TestMessage -QueuePath $queue -To 'carol@example.net'
        (Get-MailQueue -QueuePath $queue -Id ($a.Id.Substring(0, 4) + '*')).Id | Sort-Object | Should -Be (@($a.Id, $b.Id) | Sort-Object)
        (Get-MailQueue -QueuePath $queue -Id ('*' + $b.Id.Substring(12))).Id | Should -Be $b.Id
        Get-MailQueue -QueuePath $queue -Id 'zzzz*' | Should -BeNullOrEmpty
        Get-MailQueue -QueuePath $queue -Id '0000000000000000', $a.Id -ErrorVariable err -ErrorAction SilentlyContinue | ForEach-Object Id | Should -Be $a.Id
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'MessageNotFound,*'
    }

    It 'pages a long queue with -First and -Skip' {
        $ids = 1..5 | ForEach-Object { (Submit-TestMessage -QueuePath $queue -Subject "m$_").Id }
        (Get-MailQueue -QueuePath $queue -First 2).Id | Should -Be $ids[0..1]
        (Get-MailQueue -QueuePath $queue -Skip 3).Id | Should -Be $ids[3..4]
    }

    It 'gives flat objects to Export-Csv and ConvertTo-Json' {
        Submit-MailMessage -QueuePath $queue -Force -From alice@example.com -To bob@example.org, carol@example.net -Subject 'flat' -Body x | Out-Null
        Get-MailQueue -QueuePath $queue | Export-Csv -Path (Join-Path $TestDrive 'q.csv')
        $row = Import-Csv (Join-Path $TestDrive 'q.csv')
        $row.Recipients | Should -Be 'bob@example.org, carol@example.net'
        $row.State | Should -Be 'Queued'
        (Get-Content (Join-Path $TestDrive 'q.csv') -Raw) | Should -Not -Match 'System\.|MailOps\.Core'
        $json = Get-MailQueue -QueuePath $queue | ConvertTo-Json -Depth 3 | ConvertFrom-Json
        $json.State | Should -Be 'Queued'
        $json.RecipientCount | Should -Be 2
        $json.PSObject.Properties.Name | Should -Not -Contain 'Envelope'
        (Get-MailQueue -QueuePath $queue).GetRecipients() | Should -Be @('bob@example.org', 'carol@example.net')
    }
}
