#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'New-MailMessage' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'builds a MimeMessage a script can read, change and submit' {
        $file = Join-Path $TestDrive 'report.txt'
        Set-Content $file 'numbers'
        $message = New-MailMessage -From 'Alice <alice@example.com>' -To bob@example.org -Subject 'built' -Body 'hello' -Attachment $file -Header @{ 'X-Tag' = 'pester' }
        $message.GetType().FullName | Should -Be 'MimeKit.MimeMessage'
        $message.Subject | Should -Be 'built'
        $message.TextBody | Should -Match 'hello'
        @($message.Attachments).Count | Should -Be 1
        $message.Headers['X-Tag'] | Should -Be 'pester'
        $message.Subject = 'changed'
        $mail = $message | Submit-MailMessage -QueuePath $queue -Force
        $mail.Subject | Should -Be 'changed'
        $mail.Sender | Should -Be 'alice@example.com'
    }

    It 'refuses a line break in a header value (HeaderInjection)' {
        { New-MailMessage -From alice@example.com -To bob@example.org -Subject "x`r`nBcc: evil@example.net" -ErrorAction Stop } | Should -Throw -ErrorId 'HeaderInjection,*'
    }
}
