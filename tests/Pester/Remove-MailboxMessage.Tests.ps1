#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $server = Start-MailServer -Capture -Listen 127.0.0.1:0 -NoTls
    $port = $server.Endpoints[0].Port
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Remove-MailboxMessage' {
    It 'keeps the message with -WhatIf, removes it and passes it on with -PassThru, and passes over one already gone' {
        Send-TestMailWithMailKit -Port $port -From 'app@app.test' -To 'gone@example.test' -Subject 'to remove'
        $m = Wait-MailboxMessage -Server $server -Subject 'to remove' -Timeout 20
        $m | Remove-MailboxMessage -WhatIf
        Test-Path $m.Path | Should -BeTrue
        ($m | Remove-MailboxMessage -PassThru).Id | Should -Be $m.Id
        Test-Path $m.Path | Should -BeFalse
        Test-Path ([IO.Path]::ChangeExtension($m.Path, '.json')) | Should -BeFalse
        { $m | Remove-MailboxMessage -ErrorAction Stop } | Should -Not -Throw
        Get-MailboxMessage -Server $server -Subject 'to remove' | Should -BeNullOrEmpty
    }
}
