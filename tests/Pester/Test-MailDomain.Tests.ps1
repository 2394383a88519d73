#Requires -Version 7.4
# Test-MailDomain against records served by dnsmasq on a loopback port: what passes, what fails,
# and the records to publish, with DKIM keys piped from New-MailDkimKey.
BeforeDiscovery {
    $script:canRun = [bool](Get-Command dnsmasq -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/dnsmasq) -or $env:MAILOPS_REQUIRE_PEERS -eq '1' # in CI a missing peer fails
}

BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
}

Describe 'Test-MailDomain' {
    It 'has the pinned parameter surface' {
        $cmd = Get-Command Test-MailDomain
        foreach ($name in 'Domain', 'Address', 'DnsServer', 'QueuePath', 'ConfigPath') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Dns.MailDomainCheck'
    }

    It 'refuses a malformed DNS server (InvalidConfiguration)' {
        { Test-MailDomain example.org -QueuePath (New-TestQueuePath) -DnsServer 'not a server' } | Should -Throw -ErrorId 'InvalidConfiguration,*'
    }
}

Describe 'Test-MailDomain against DNS' -Skip:(-not $script:canRun) {
    BeforeAll {
        $queue = New-TestQueuePath
        $key = New-MailDkimKey -Domain pester.test -Selector s1 -Algorithm Ed25519 -QueuePath $queue
        $server = Start-TestDns -Record @(
            '--mx-host=pester.test,mx.pester.test,10', '--host-record=mx.pester.test,127.0.0.2', '--host-record=out.pester.test,127.0.0.9',
            '--ptr-record=9.0.0.127.in-addr.arpa,out.pester.test', '"--txt-record=pester.test,v=spf1 ip4:127.0.0.9 -all"')
        $dns = $server.Process; $port = $server.Port
        $config = Join-Path $TestDrive 'config.json'
        @{ HostName = 'out.pester.test'; DnsServers = @("127.0.0.1:$port") } | ConvertTo-Json | Set-Content $config
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        do {
            Start-Sleep -Milliseconds 100
            $mx = Test-MailDomain pester.test -ConfigPath $config -QueuePath $queue | Where-Object Check -eq 'MX'
        } until ($mx.Status -eq 'Pass' -or [DateTime]::UtcNow -gt $deadline)
    }

    AfterAll {
        if ($dns -and -not $dns.HasExited) { $dns.Kill($true) } # timeout(1) and dnsmasq under it
    }

    It 'passes what is published and gives the record to publish for what is not' {
        $checks = Test-MailDomain pester.test -ConfigPath $config -QueuePath $queue
        $byCheck = @{}; foreach ($c in $checks) { $byCheck[$c.Check] = $c }
        $byCheck.MX.Status | Should -Be 'Pass'
        $byCheck.SPF.Status | Should -Be 'Pass' -Because $byCheck.SPF.Detail
        $byCheck.HELO.Status | Should -Be 'Pass'
        $byCheck.PTR.Status | Should -Be 'Pass'
        $byCheck.DMARC.Status | Should -Be 'Fail'
        $byCheck.DMARC.Record | Should -BeLike '_dmarc.pester.test. IN TXT "v=DMARC1; p=quarantine*'
        $byCheck.DKIM.Status | Should -Be 'Fail' -Because 'the key is not published'
        $byCheck.DKIM.Record | Should -Be "$($key.RecordName). IN TXT `"$($key.TxtRecord)`""
    }

    It 'checks the addresses it is given, and takes domains from the pipeline' {
        $checks = $key | Test-MailDomain -Address 127.0.0.8 -ConfigPath $config -QueuePath $queue
        ($checks | Where-Object Check -eq 'SPF').Status | Should -Be 'Fail'
        ($checks | Where-Object Check -eq 'SPF').Record | Should -Be 'pester.test. IN TXT "v=spf1 ip4:127.0.0.9 ip4:127.0.0.8 -all"'
        ($checks | Where-Object Check -eq 'PTR').Found | Should -Be '127.0.0.8: none'
        ($checks | Out-String) | Should -Match 'Check\s+Status'
    }
}
