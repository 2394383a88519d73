#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Submit-MailMessage' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Submit-MailMessage
        foreach ($name in 'Message', 'Path', 'From', 'To', 'Cc', 'Bcc', 'Subject', 'Body', 'BodyAsHtml', 'Attachment', 'Header', 'Sender', 'Recipient', 'QueuePath', 'ConfigPath', 'Force', 'WhatIf', 'Confirm') {
            $cmd.Parameters.Keys | Should -Contain $name
        }
        $cmd.ParameterSets.Name | Should -Contain 'Compose'
        $cmd.ParameterSets.Name | Should -Contain 'Message'
        $cmd.ParameterSets.Name | Should -Contain 'Path'
    }

    It 'queues a message built from parameters and returns it' {
        $mail = Submit-MailMessage -QueuePath $queue -Force -From 'Alice <alice@example.com>' -To bob@example.org -Cc carol@example.net -Bcc dave@example.net -Subject 'hello' -Body 'text'
        $mail.State | Should -Be 'Queued'
        $mail.Sender | Should -Be 'alice@example.com'
        $mail.GetRecipients() | Sort-Object | Should -Be @('bob@example.org', 'carol@example.net', 'dave@example.net')
        $file = $mail | Export-QueuedMail -Destination $TestDrive -Force
        Get-Content $file.FullName -Raw | Should -Not -Match 'dave@example.net'
    }

    It 'returns every message it queued, even one the server delivered at once' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName fast.test -LocalDomain fast.test -Mailbox 'bob@fast.test'
        try {
            # Local delivery can retire a message before the cmdlet reads it back.
            $returned = foreach ($i in 1..100) { Submit-MailMessage -QueuePath $queue -From 'a@fast.test' -To 'bob@fast.test' -Subject "fast $i" -Body 'hi' }
            @($returned | Where-Object { $null -ne $_ }).Count | Should -Be 100
            ($returned.Subject | Select-Object -Unique).Count | Should -Be 100
        }
        finally { $server | Stop-MailServer }
    }

    It 'takes MimeKit messages from the pipeline' {
        $message = New-TestMimeMessage -From 'alice@example.com' -To 'bob@example.org' -Subject 'from mimekit'
        $mail = $message | Submit-MailMessage -QueuePath $queue -Force
        $mail.Subject | Should -Be 'from mimekit'
        $mail.Recipients | Should -Be @('bob@example.org')
    }

    It 'takes .eml files from Get-ChildItem' {
        $dir = Join-Path $TestDrive 'outbox'
        New-Item -ItemType Directory $dir | Out-Null
        "From: a@example.com`r`nTo: b@example.org`r`nSubject: eml one`r`n`r`nbody`r`n" | Set-Content (Join-Path $dir 'one.eml') -NoNewline
        "From: a@example.com`r`nTo: c@example.org`r`nSubject: eml two`r`n`r`nbody`r`n" | Set-Content (Join-Path $dir 'two.eml') -NoNewline
        $mail = Get-ChildItem $dir -Filter *.eml | Submit-MailMessage -QueuePath $queue -Force
        $mail | Should -HaveCount 2
        $mail.Subject | Sort-Object | Should -Be @('eml one', 'eml two')
    }

    It 'refuses a line break in <Parameter> with HeaderInjection and queues nothing' -TestCases @(
        @{ Parameter = 'Subject'; Extra = @{ Subject = "hi`r`nBcc: evil@example.net" } }
        @{ Parameter = 'Header'; Extra = @{ Header = @{ 'X-Tag' = "a`nBcc: evil@example.net" } } }
        @{ Parameter = 'To'; Extra = @{ To = "bob@example.org`r`nBcc: evil@example.net" } }
    ) {
        $params = @{ QueuePath = $queue; Force = $true; From = 'alice@example.com'; To = 'bob@example.org' }
        foreach ($k in $Extra.Keys) { $params[$k] = $Extra[$k] }
        { Submit-MailMessage @params -ErrorAction Stop } | Should -Throw -ErrorId 'HeaderInjection,*'
        Get-MailQueue -QueuePath $queue -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'changes nothing with -WhatIf' {
        Submit-MailMessage -QueuePath $queue -Force -From alice@example.com -To bob@example.org -Subject x -WhatIf
        Get-MailQueue -QueuePath $queue -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'reports a non-message object as NotAMessage' {
        { [pscustomobject]@{ A = 1 } | Submit-MailMessage -QueuePath $queue -Force -ErrorAction Stop } | Should -Throw -ErrorId 'NotAMessage,*'
    }

    It 'refuses a queue that does not exist (QueueNotFound) unless -Force, and creates none' {
        { Submit-MailMessage -QueuePath $queue -From alice@example.com -To bob@example.org -Subject x -ErrorAction Stop } | Should -Throw -ErrorId 'QueueNotFound,*'
        Test-Path $queue | Should -BeFalse
        (Submit-MailMessage -QueuePath $queue -Force -From alice@example.com -To bob@example.org -Subject x).State | Should -Be 'Queued'
    }
}
