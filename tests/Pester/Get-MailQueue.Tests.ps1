#Requires -Version 7.4
BeforeAll {
    $repo = Resolve-Path (Join-Path $PSScriptRoot '..' '..')
    Import-Module (Join-Path $repo 'MailOps.psd1') -Force
    $mailops = Join-Path $repo 'src' 'MailOps.Cli' 'bin' 'Debug' 'net8.0' 'mailops'
}

Describe 'Get-MailQueue' {
    BeforeEach {
        $queue = Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
    }

    It 'exposes the pinned parameter surface' {
        $cmd = Get-Command Get-MailQueue
        $cmd.Parameters.Keys | Should -Contain 'QueuePath'
        $cmd.Parameters.Keys | Should -Contain 'Id'
        $cmd.Parameters.Keys | Should -Contain 'State'
        $cmd.OutputType.Type.Name | Should -Contain 'QueuedMail'
    }

    It 'lists a message submitted with the mailops CLI' {
        $id = "Subject: from pester`n`nhello`n" | & $mailops submit --queue $queue -f alice@example.com bob@example.org
        $LASTEXITCODE | Should -Be 0
        $mail = Get-MailQueue -QueuePath $queue
        $mail | Should -HaveCount 1
        $mail.Id | Should -Be $id.Trim()
        $mail.State | Should -Be 'Queued'
        $mail.Subject | Should -Be 'from pester'
        $mail.Recipients | Should -Be @('bob@example.org')
    }

    It 'reports a missing queue as an error with a stable ErrorId' {
        $missing = Join-Path $TestDrive 'nowhere'
        Get-MailQueue -QueuePath $missing -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QueueNotFound*'
    }
}
