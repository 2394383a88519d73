#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1

    # Lines of a default table view rendered at 80 columns, trailing blanks removed.
    function Show-At80($InputObject) {
        ($InputObject | Out-String -Width 80) -split "`r?`n" | ForEach-Object TrimEnd | Where-Object { $_ }
    }
}

Describe 'The default views at 80 columns' {
    BeforeEach {
        $queue = New-TestQueuePath
    }

    It 'lists queued mail with whole headers and the key columns whole' {
        $mail = Submit-MailMessage -QueuePath $queue -Force -From 'alice@example.com' -To 'bob@example.org', 'carol@example.net' -Subject 'view' -Body x
        $lines = Show-At80 (Get-MailQueue -QueuePath $queue)
        $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
        $header = $lines[0] -split '\s+' | Where-Object { $_ }
        $header | Should -Be @('Id', 'State', 'Age', 'Size', 'Sender', 'Recipients')
        $text = $lines -join "`n"
        $text | Should -Match ([regex]::Escape($mail.Id))
        $text | Should -Match 'alice@example.com'
        # The last column wraps rather than being cut: both recipients are there, whole.
        $text | Should -Match 'bob@example.org'
        $text | Should -Match 'carol@example.net'
        $text | Should -Not -Match '…'
    }

    It 'shows a server''s port and a real uptime' {
        $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
        try {
            Start-Sleep -Seconds 1.2
            $lines = Show-At80 (Get-MailServer -Id $server.Id)
            $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
            ($lines -join "`n") | Should -Match ([regex]::Escape("127.0.0.1:$($server.Endpoints[0].Port)"))
            ($lines -join "`n") | Should -Match '\b[1-9]\d*s\b'
        }
        finally {
            $server | Stop-MailServer -Force
        }
    }

    It 'keeps a trace''s detail whole' {
        $mail = Submit-MailMessage -QueuePath $queue -Force -From 'alice@example.com' -To 'bob@example.org' -Subject 'trace view' -Body x
        $lines = Show-At80 (Trace-MailMessage -QueuePath $queue -Id $mail.Id)
        $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
        (($lines -join ' ') -replace '\s+', ' ') | Should -Match 'from <alice@example.com> via'
    }

    It 'has a list view with the detail of a message' {
        $mail = Submit-MailMessage -QueuePath $queue -Force -From 'alice@example.com' -To 'bob@example.org' -Subject 'detail' -Body x
        $text = (Get-MailQueue -QueuePath $queue | Format-List | Out-String -Width 80)
        foreach ($name in 'Id', 'State', 'Sender', 'Recipients', 'Subject', 'MessageId', 'Attempts', 'LastError', 'QueuePath') {
            $text | Should -Match "(?m)^$name\s+:"
        }
    }
}
