#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls
    $port = $server.Endpoints[0].Port
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Wait-MailboxMessage' {
    It 'returns a message that arrives while it waits, within 100 ms of its arrival in the mailbox' {
        # A sender that starts after the wait has begun.
        $script = Join-Path $TestDrive 'late.py'
        Set-Content -Path $script -Value @"
import smtplib, time
time.sleep(1.5)
s = smtplib.SMTP('127.0.0.1', $port)
s.sendmail('app@app.test', ['late@example.test'], 'Subject: late one\r\n\r\nbody\r\n')
s.quit()
"@
        $sender = Start-Process -FilePath /usr/bin/python3 -ArgumentList $script -PassThru
        $m = Wait-MailboxMessage -Server $server -Subject 'late one' -Timeout 20
        $returned = [DateTime]::UtcNow
        $sender.WaitForExit()
        $m.Recipients | Should -Be @('late@example.test')
        $kept = (Get-Item $m.Path).LastWriteTimeUtc
        ($returned - $kept).TotalMilliseconds | Should -BeLessThan 100
    }

    It 'returns at once what is there already, and waits for -Count' {
        Send-TestMailWithMailKit -Port $port -From 'app@app.test' -To 'one@example.test' -Subject 'batch 1'
        Send-TestMailWithMailKit -Port $port -From 'app@app.test' -To 'two@example.test' -Subject 'batch 2'
        $both = Wait-MailboxMessage -Server $server -Subject 'batch *' -Count 2 -Timeout 20
        $both.Count | Should -Be 2
        $both.Subject | Should -Contain 'batch 1'
    }

    It 'times out with MailWaitTimeout when nothing matches' {
        $started = Get-Date
        { Wait-MailboxMessage -Server $server -Subject 'never sent' -Timeout 0.5 } | Should -Throw -ErrorId 'MailWaitTimeout*'
        ((Get-Date) - $started).TotalSeconds | Should -BeLessThan 10
    }
}
