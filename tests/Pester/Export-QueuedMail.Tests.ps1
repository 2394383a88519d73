#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Export-QueuedMail' {
    BeforeEach {
        $queue = New-TestQueuePath
        $mail = Submit-TestMessage -QueuePath $queue -Subject 'exported'
        $out = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
    }

    It 'has the pinned parameter surface' {
        $cmd = Get-Command Export-QueuedMail
        foreach ($name in 'Id', 'Destination', 'QueuePath', 'Force', 'WhatIf', 'Confirm') { $cmd.Parameters.Keys | Should -Contain $name }
    }

    It 'writes <id>.eml files from the pipeline' {
        $file = Get-MailQueue -QueuePath $queue | Export-QueuedMail -Destination $out
        $file.Name | Should -Be "$($mail.Id).eml"
        Get-Content $file.FullName -Raw | Should -Match 'Subject: exported'
        Get-MailQueue -QueuePath $queue | Should -HaveCount 1
        # As Get-Item gives it: the file system view shows its mode and size.
        $file.Length | Should -BeGreaterThan 0
        $file.Mode | Should -Not -BeNullOrEmpty
        $file.PSProvider.Name | Should -Be 'FileSystem'
        ($file | Out-String -Width 120) | Should -Match ([regex]::Escape("$($file.Length) $($mail.Id).eml"))
    }

    It 'keeps an existing file unless -Force (FileExists)' {
        $target = Join-Path $TestDrive 'one.eml'
        Set-Content $target 'old'
        $mail | Export-QueuedMail -Destination $target -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FileExists,*'
        Get-Content $target -Raw | Should -Match 'old'
        $mail | Export-QueuedMail -Destination $target -Force | Out-Null
        Get-Content $target -Raw | Should -Match 'Subject: exported'
    }

    It 'writes nothing with -WhatIf' {
        $mail | Export-QueuedMail -Destination $out -WhatIf
        Test-Path (Join-Path $out "$($mail.Id).eml") | Should -BeFalse
    }
}
