#Requires -Version 7.4
# A queue another account owns (a system queue made by mailops install): Submit-MailMessage hands
# mail to its maildrop through the drop helper, the server's pickup queues it, and the cmdlets that
# would read or write the queue itself refuse with QueueNotOwned. Linux, as root (chown).
BeforeDiscovery {
    $script:canRun = $IsLinux -and ((id -u) -eq '0')
}

BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $helper = @('Debug', 'Release') | ForEach-Object { Join-Path $script:RepoRoot 'src' 'MailOps.Drop' 'bin' $_ 'net10.0' 'mailops-drop' } |
        Where-Object { Test-Path $_ } | Select-Object -First 1
    $env:MAILOPS_DROP_HELPER = $helper
}

AfterAll {
    Remove-Item Env:MAILOPS_DROP_HELPER -ErrorAction SilentlyContinue
}

Describe 'A queue owned by another account' -Skip:(-not $script:canRun) {
    BeforeEach {
        $queue = New-TestQueuePath
        New-Item -ItemType Directory -Path (Join-Path $queue 'maildrop') | Out-Null
        chown -R nobody $queue
    }

    It 'takes Submit-MailMessage through the maildrop, and the server picks it up' {
        $helper | Should -Not -BeNullOrEmpty -Because 'the build makes the drop helper'
        $out = Submit-MailMessage -QueuePath $queue -From 'alice@example.com' -To 'bob@example.org' -Subject 'via the maildrop' -Body 'hello' -Verbose 4>&1
        @($out | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }) | Should -HaveCount 0 -Because 'there is no queue id before the pickup'
        ($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n" | Should -Match 'handed to the maildrop of'
        $drops = Get-ChildItem -LiteralPath (Join-Path $queue 'maildrop') -File
        $drops | Should -HaveCount 1
        $drops[0].Name | Should -Match '^d[0-9a-f]{28}$'
        $text = [IO.File]::ReadAllText($drops[0].FullName)
        $text | Should -Match '^MAILOPS-DROP/1'
        $text | Should -Match 'Subject: via the maildrop'
        Test-Path (Join-Path $queue 'env') | Should -BeFalse -Because 'only the server writes the queue'

        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            $server.IsSystemQueue | Should -BeTrue
            $deadline = [DateTime]::UtcNow.AddSeconds(5)
            while ($server.Queued -lt 1 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            $server.Queued | Should -Be 1
            Get-ChildItem -LiteralPath (Join-Path $queue 'maildrop') -File | Should -HaveCount 0
            (Get-MailServer -Id $server.Id | Format-List | Out-String) | Should -Match 'IsSystemQueue\s*:\s*True'
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }

    It 'refuses to read it directly with QueueNotOwned' {
        Get-MailQueue -QueuePath $queue -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QueueNotOwned*'
        $err[0].CategoryInfo.Category | Should -Be 'PermissionDenied'
    }

    It 'says at once when an address cannot be right, and drops nothing' {
        Submit-MailMessage -QueuePath $queue -From 'alice@example.com' -To 'bob@example.org' -Subject 's' -Body 'b' -Sender 'not an address' -ErrorAction SilentlyContinue -ErrorVariable err
        $err | Should -HaveCount 1
        $err[0].Exception.Message | Should -Match "Bad address 'not an address'"
        Get-ChildItem -LiteralPath (Join-Path $queue 'maildrop') -File | Should -HaveCount 0
    }
}
