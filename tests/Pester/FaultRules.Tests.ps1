#Requires -Version 7.4
BeforeDiscovery {
    $script:haveDns = [bool](Get-Command dnsmasq -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/dnsmasq) -or $env:MAILOPS_REQUIRE_PEERS -eq '1' # in CI a missing peer fails
}

BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    # Python smtplib as the client: it reports each reply's code.
    $probe = Join-Path $TestDrive 'probe.py'
    Set-Content -Path $probe -Value @'
import json, smtplib, sys, time
port = int(sys.argv[1])
def attempt(name, steps):
    started = time.monotonic()
    try:
        s = smtplib.SMTP('127.0.0.1', port, timeout=20)
        result = steps(s)
        try: s.quit()
        except Exception: pass
    except smtplib.SMTPConnectError as e: result = ['connect', e.smtp_code]
    except smtplib.SMTPServerDisconnected: result = ['disconnected']
    except smtplib.SMTPResponseException as e: result = ['error', e.smtp_code]
    return name, {'result': result, 'seconds': round(time.monotonic() - started, 2)}
def ehlo(s): return [s.ehlo()[0]]
def mail(sender): return lambda s: [s.ehlo()[0], s.mail(sender)[0]]
def rcpt(rcpt): return lambda s: [s.ehlo()[0], s.mail('app@app.test')[0], s.rcpt(rcpt)[0]]
def data(subject): return lambda s: [s.ehlo()[0], s.mail('app@app.test')[0], s.rcpt('x@ok.test')[0], s.data(('Subject: %s\r\n\r\nbody\r\n' % subject).encode())[0]]
steps = dict([
    attempt('helo', ehlo),
    attempt('helo-again', ehlo),
    attempt('mail', mail('mailfail@app.test')),
    attempt('mail-ok', mail('fine@app.test')),
    attempt('rcpt', rcpt('who@bad.test')),
    attempt('rcpt-slow', rcpt('slow@ok.test')),
    attempt('data', data('too big for you')),
    attempt('data-ok', data('small')),
    attempt('drop', mail('drop@app.test')),
])
print(json.dumps(steps))
'@
}

Describe 'Fault rules' {
    It 'answer their replies, delays and dropped connections at each stage (Python smtplib sees the codes)' {
        $rules = @(
            @{ Stage = 'Helo'; Reply = '550 5.7.1 not today'; Times = 1 }
            @{ Stage = 'Mail'; Sender = 'mailfail@*'; Reply = '451 4.3.0 try again later' }
            @{ Stage = 'Mail'; Sender = 'drop@*'; Drop = $true }
            @{ Stage = 'Rcpt'; Recipient = '*@bad.test'; Reply = '550 5.1.1 no such user' }
            @{ Stage = 'Rcpt'; Recipient = 'slow@*'; Delay = '1s' }
            @{ Stage = 'Data'; Subject = 'too big*'; Reply = '552 5.3.4 message too big for this test' }
        )
        $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule $rules
        try {
            $r = /usr/bin/python3 $probe $server.Endpoints[0].Port | ConvertFrom-Json
            $r.helo.result | Should -Be @(550)
            $r.'helo-again'.result | Should -Be @(250)          # Times = 1
            $r.mail.result | Should -Be @(250, 451)
            $r.'mail-ok'.result | Should -Be @(250, 250)
            $r.rcpt.result | Should -Be @(250, 250, 550)
            $r.'rcpt-slow'.result | Should -Be @(250, 250, 250)
            $r.'rcpt-slow'.seconds | Should -BeGreaterOrEqual 0.9
            $r.data.result | Should -Be @(250, 250, 250, 552)   # smtplib returns the DATA reply
            $r.'data-ok'.result | Should -Be @(250, 250, 250, 250)
            $r.drop.result | Should -Be @('disconnected')
            # Only the message no rule refused was kept.
            (Wait-MailboxMessage -Server $server -Subject small -Timeout 20).Subject | Should -Be 'small'
            Get-MailboxMessage -Server $server -Subject 'too big*' | Should -BeNullOrEmpty
        }
        finally { $server | Stop-MailServer -Force }
    }

    It 'refuses the greeting with a Connect rule' {
        $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule @{ Stage = 'Connect'; Reply = '421 4.3.2 down for maintenance' }
        try {
            $code = /usr/bin/python3 -c "import smtplib, sys`ntry:`n  smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)`n  print(220)`nexcept smtplib.SMTPConnectError as e:`n  print(e.smtp_code)" $server.Endpoints[0].Port
            $code | Should -Be '421'
        }
        finally { $server | Stop-MailServer -Force }
    }

    It 'refuses a rule that makes no sense, with InvalidConfiguration' {
        { Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule @{ Stage = 'Rcpt'; Reply = 'hello' } } | Should -Throw -ErrorId 'InvalidConfiguration*'
        { Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule @{ Stage = 'Mail'; Subject = 'x'; Reply = '550 no' } } | Should -Throw -ErrorId 'InvalidConfiguration*'
        { Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule @{ Stage = 'Rcpt'; Answer = '550 no' } } | Should -Throw -ErrorId 'InvalidConfiguration*'
    }

    It 'makes MailOps defer on 451 and retry, bounce on 550, and change on a running server' {
        $receiver = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls -Rule @(
            @{ Stage = 'Rcpt'; Recipient = 'flaky@*'; Reply = '451 4.3.0 try again later'; Times = 1 }
            @{ Stage = 'Rcpt'; Recipient = 'gone@*'; Reply = '550 5.1.1 no such user' }
        )
        $queue = New-TestQueuePath
        $sender = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName sender.test -RetrySchedule '1s' -Route @{ 'rx.test' = "127.0.0.1:$($receiver.Endpoints[0].Port)" }
        try {
            $mail = Submit-MailMessage -QueuePath $queue -From 'app@sender.test' -To 'flaky@rx.test', 'gone@rx.test' -Subject 'retry me' -Body 'hello'
            # The 451 deferred flaky@, the retry a second later delivered it; gone@ bounced at once.
            $kept = Wait-MailboxMessage -Server $receiver -Subject 'retry me' -Timeout 30
            $kept.Recipients | Should -Be @('flaky@rx.test')
            $log = Get-MailLog -QueuePath $queue -Id $mail.Id
            ($log | Where-Object { $_.Event -eq 'Deferred' -and $_.Recipient -eq 'flaky@rx.test' }).Status | Should -Match '^451'
            ($log | Where-Object { $_.Event -eq 'Bounced' -and $_.Recipient -eq 'gone@rx.test' }).Status | Should -Match '^550'
            ($log | Where-Object { $_.Event -eq 'Delivered' }).Recipient | Should -Be @('flaky@rx.test')

            # A rule added while the receiver runs applies to the next session.
            $receiver | Update-MailServer -Rule @{ Stage = 'Data'; Reply = '554 5.7.1 rejected by the test' }
            $second = Submit-MailMessage -QueuePath $queue -From 'app@sender.test' -To 'later@rx.test' -Subject 'after the change' -Body 'x'
            $deadline = (Get-Date).AddSeconds(30)
            do { Start-Sleep -Milliseconds 200; $bounced = Get-MailLog -QueuePath $queue -Id $second.Id -Event Bounced | Where-Object Recipient -eq 'later@rx.test' } until ($bounced -or (Get-Date) -gt $deadline)
            $bounced.Status | Should -Match '^554'
            $receiver | Update-MailServer -Rule @()
        }
        finally {
            $sender | Stop-MailServer -Force
            $receiver | Stop-MailServer -Force
        }
    }

    It 'makes MailOps try the next MX when the first drops the connection' -Skip:(-not $script:haveDns) {
        $port = Get-FreePort
        $dns = Start-TestDns -Record @('--mx-host=two.test,mx1.two.test,10', '--mx-host=two.test,mx2.two.test,20',
            '--host-record=mx1.two.test,127.0.0.2', '--host-record=mx2.two.test,127.0.0.3')
        $mx1 = Start-MailServer -Capture -Listen "127.0.0.2:$port" -NoTls -QueuePath (New-TestQueuePath) -Rule @{ Stage = 'Mail'; Drop = $true }
        $mx2 = Start-MailServer -Capture -Listen "127.0.0.3:$port" -NoTls -QueuePath (New-TestQueuePath)
        $queue = New-TestQueuePath
        $sender = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName sender.test -DnsServer "127.0.0.1:$($dns.Port)" -RemotePort $port
        try {
            $mail = Submit-MailMessage -QueuePath $queue -From 'app@sender.test' -To 'someone@two.test' -Subject 'two hosts' -Body 'x'
            (Wait-MailboxMessage -Server $mx2 -Subject 'two hosts' -Timeout 30).Recipients | Should -Be @('someone@two.test')
            Get-MailboxMessage -Server $mx1 | Should -BeNullOrEmpty
            $attempts = Trace-MailMessage -QueuePath $queue -Id $mail.Id | Where-Object Event -eq 'Attempt'
            $attempts.Host | Should -Be @('mx1.two.test', 'mx2.two.test')
            $attempts[0].Status | Should -Be '4.4.2'
        }
        finally {
            $sender, $mx1, $mx2 | Stop-MailServer -Force
            $dns.Process.Kill($true)
        }
    }
}
