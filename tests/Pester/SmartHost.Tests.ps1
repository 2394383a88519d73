#Requires -Version 7.4
# Relaying through a provider that wants AUTH: Start-MailServer -SmartHostCredential takes a
# PSCredential (kept in memory, sent over TLS only). The provider is aiosmtpd (tests/peers/provider.py,
# Debian's python3-aiosmtpd) with a certificate made by openssl for this test.
BeforeDiscovery {
    $script:canRun = (Test-Path /usr/bin/python3) -and [bool](Get-Command openssl -ErrorAction SilentlyContinue)
    if ($script:canRun) {
        & /usr/bin/python3 -c 'import aiosmtpd' 2>$null
        $script:canRun = $LASTEXITCODE -eq 0
    }
    if (-not $script:canRun -and $env:MAILOPS_REQUIRE_PEERS -eq '1') { $script:canRun = $true } # in CI a missing peer fails
}

BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    function Get-FreePort {
        $l = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $l.Start()
        try { $l.LocalEndpoint.Port } finally { $l.Stop() }
    }
}

Describe 'Start-MailServer -SmartHostCredential' -Skip:(-not $script:canRun) {
    BeforeAll {
        $dir = Join-Path $TestDrive 'provider'
        New-Item -ItemType Directory $dir | Out-Null
        $cert = Join-Path $TestDrive 'relay.pem'; $key = Join-Path $TestDrive 'relay.key'
        openssl req -x509 -newkey rsa:2048 -nodes -keyout $key -out $cert -days 1 -subj /CN=127.0.0.1 -addext 'subjectAltName=IP:127.0.0.1' 2>$null
        $ports = 1..3 | ForEach-Object { Get-FreePort }
        $out = Join-Path $TestDrive 'provider.out'
        $provider = Start-Process /usr/bin/python3 -PassThru -RedirectStandardOutput $out -RedirectStandardError (Join-Path $TestDrive 'provider.err') -ArgumentList @(
            (Join-Path $script:RepoRoot 'tests' 'peers' 'provider.py'), '--cert', $cert, '--key', $key, '--dir', $dir,
            '--starttls-port', $ports[0], '--implicit-port', $ports[1], '--plain-port', $ports[2], '--user', 'app', '--password', 's3cret', '--lifetime', '120')
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not ((Test-Path $out) -and (Get-Content $out) -contains 'READY') -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    }

    AfterAll {
        Get-MailServer | Stop-MailServer -Force
        if ($provider -and -not $provider.HasExited) { $provider.Kill() }
    }

    It 'delivers through the provider with the credential, and defers with a wrong one' {
        $good = [pscredential]::new('app', (ConvertTo-SecureString 's3cret' -AsPlainText -Force))
        $queue = New-TestQueuePath
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -HostName app.test -SmartHost "127.0.0.1:$($ports[0])" -SmartHostCredential $good
        $server | Should -Not -BeNullOrEmpty
        Submit-MailMessage -QueuePath $queue -From 'app@app.test' -To 'customer@example.com' -Subject 'through the provider' -Body 'hi' | Out-Null
        $deadline = [DateTime]::UtcNow.AddSeconds(15)
        while (-not (Get-ChildItem $dir -File) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        $arrived = Get-ChildItem $dir -File
        $arrived | Should -HaveCount 1 -Because "the queue says: $((Get-MailQueue -QueuePath $queue).LastError); provider: $(Get-Content (Join-Path $TestDrive provider.err) -Raw) $(Get-Content $out -Raw)"
        Get-Content $arrived[0].FullName -TotalCount 1 | Should -Be 'X-Provider-Auth: app'
        ($server.Log.Lines.Message -join "`n") | Should -Not -Match 's3cret'
        $server | Stop-MailServer

        $bad = [pscredential]::new('app', (ConvertTo-SecureString 'wrong' -AsPlainText -Force))
        $queue2 = New-TestQueuePath
        $server2 = Start-MailServer -QueuePath $queue2 -Listen 127.0.0.1:0 -NoTls -HostName app.test -SmartHost "127.0.0.1:$($ports[0])" -SmartHostCredential $bad
        $queued = Submit-MailMessage -QueuePath $queue2 -From 'app@app.test' -To 'customer@example.com' -Subject 'refused' -Body 'hi'
        $deadline = [DateTime]::UtcNow.AddSeconds(15)
        do { Start-Sleep -Milliseconds 100; $m = Get-MailQueue -QueuePath $queue2 -Id $queued.Id } while ($m.State -ne 'Deferred' -and [DateTime]::UtcNow -lt $deadline)
        $m.State | Should -Be 'Deferred'
        $m.LastError | Should -Match 'AUTH refused: 535'
        (Trace-MailMessage -QueuePath $queue2 -Id $queued.Id).Event | Should -Not -Contain 'Bounced'
        $server2 | Stop-MailServer
    }
}
