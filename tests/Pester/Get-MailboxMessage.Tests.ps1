#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    # A capturing test server on a port of its own, with a queue of its own in the temporary directory.
    $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls
    $port = $server.Endpoints[0].Port
    $attachment = [byte[]]::new(70000)
    [Random]::new(7).NextBytes($attachment)
    $attachmentPath = Join-Path $TestDrive 'report.bin'
    [IO.File]::WriteAllBytes($attachmentPath, $attachment)
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Get-MailboxMessage' {
    It 'has the pinned parameter surface' {
        $parameters = (Get-Command Get-MailboxMessage).Parameters.Keys
        foreach ($name in 'Server', 'QueuePath', 'Address', 'Subject', 'From', 'Since', 'First', 'Raw') { $parameters | Should -Contain $name }
        (Get-Command Get-MailboxMessage).OutputType.Name | Should -Contain 'MailOps.Core.Local.MailboxMessage'
    }

    It 'started in a queue of its own and said which port it got' {
        $server.QueuePath | Should -BeLike ([IO.Path]::Combine([IO.Path]::GetTempPath(), 'mailops-capture-*'))
        $port | Should -BeGreaterThan 0
    }

    It 'keeps mail from Python smtplib for any domain, with its envelope and a byte-identical attachment' {
        $script = @"
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'Contact Form <form@shop.example>'
m['To'] = 'sales@shop.example'
m['Subject'] = 'New enquiry from Ada'
m.set_content('Ada asks about prices.')
m.add_alternative('<p>Ada asks about <b>prices</b>.</p>', subtype='html')
m.add_attachment(open(sys.argv[2], 'rb').read(), maintype='application', subtype='octet-stream', filename='report.bin')
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.send_message(m, from_addr='bounces@shop.example', to_addrs=['sales@shop.example', 'archive@elsewhere.test'])
"@
        $script | /usr/bin/python3 - $port $attachmentPath
        $LASTEXITCODE | Should -Be 0
        $m = Wait-MailboxMessage -Server $server -Subject 'New enquiry*' -Timeout 20
        $m.Sender | Should -Be 'bounces@shop.example'
        $m.Recipients | Should -Be @('sales@shop.example', 'archive@elsewhere.test')
        $m.From | Should -BeLike '*form@shop.example*'
        $m.To | Should -Be @('sales@shop.example')
        $m.TextBody | Should -Match 'Ada asks about prices'
        $m.HtmlBody | Should -Match '<b>prices</b>'
        $m.Attachments.Count | Should -Be 1
        $m.Attachments[0].Name | Should -Be 'report.bin'
        $m.Attachments[0].Size | Should -Be 70000
        [Convert]::ToBase64String($m.Attachments[0].Content) | Should -BeExactly ([Convert]::ToBase64String($attachment))
        $m.Message.GetType().FullName | Should -Be 'MimeKit.MimeMessage'
    }

    It 'keeps mail from swaks and from MailKit' {
        swaks --server 127.0.0.1 --port $port --from 'cron@host.test' --to 'ops@anywhere.test' --header 'Subject: nightly backup' --body 'ok' --silent 2 | Out-Null
        $LASTEXITCODE | Should -Be 0
        Send-TestMailWithMailKit -Port $port -From 'app@app.test' -To 'user@customer.test' -Subject 'Welcome aboard'
        (Wait-MailboxMessage -Server $server -Address 'ops@anywhere.test' -Timeout 20).Subject | Should -Be 'nightly backup'
        (Wait-MailboxMessage -Server $server -Subject 'Welcome*' -Timeout 20).Recipients | Should -Be @('user@customer.test')
    }

    It 'filters by address, subject, sender and time with wildcards, newest first' {
        $all = Get-MailboxMessage -Server $server
        $all.Count | Should -BeGreaterOrEqual 3
        $times = $all.Arrived
        for ($i = 1; $i -lt $times.Count; $i++) { $times[$i - 1] | Should -BeGreaterOrEqual $times[$i] }
        (Get-MailboxMessage -Server $server -Address '*@ELSEWHERE.test').Subject | Should -Be 'New enquiry from Ada'
        (Get-MailboxMessage -Server $server -From 'cron@*').Subject | Should -Be 'nightly backup'
        (Get-MailboxMessage -Server $server -Subject 'no such*') | Should -BeNullOrEmpty
        (Get-MailboxMessage -Server $server -Since (Get-Date).AddMinutes(5)) | Should -BeNullOrEmpty
        (Get-MailboxMessage -Server $server -First 1).Count | Should -Be 1
        # The server of the session is the default, and a pipeline gives it too.
        (Get-MailboxMessage -Subject 'nightly*').Subject | Should -Be 'nightly backup'
        ($server | Get-MailboxMessage -Subject 'nightly*').Subject | Should -Be 'nightly backup'
    }

    It 'gives the octets as kept with -Raw' {
        $raw = Get-MailboxMessage -Server $server -Subject 'nightly backup' -Raw
        $raw.GetType() | Should -Be ([byte[]])
        $text = [Text.Encoding]::UTF8.GetString($raw)
        $text | Should -Match '^Received: from '
        $text | Should -Match 'Subject: nightly backup'
    }

    It 'shows a table that fits 80 columns' {
        $lines = (Get-MailboxMessage -Server $server | Out-String -Width 80) -split "`r?`n" | ForEach-Object TrimEnd | Where-Object { $_ }
        $lines[0] | Should -Match '^Arrived\s+Sender\s+Recipients\s+Att\s+Subject'
        $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
    }

    It 'relays nothing: the queue is empty and the mail log says each recipient was captured' {
        (Get-MailQueue -QueuePath $server.QueuePath) | Should -BeNullOrEmpty
        $trace = Get-MailLog -QueuePath $server.QueuePath -Recipient 'archive@elsewhere.test' -Event Delivered
        $trace.Detail | Should -Match 'captured'
    }
}
