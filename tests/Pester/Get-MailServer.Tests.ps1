#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $queue = New-TestQueuePath
    $server = Start-MailServer -QueuePath $queue -Listen 127.0.0.1:0 -NoTls -NoDelivery
}

AfterAll {
    $server | Stop-MailServer -Force
}

Describe 'Get-MailServer' {
    It 'has the pinned parameter surface' {
        (Get-Command Get-MailServer).Parameters.Keys | Should -Contain 'Id'
        (Get-Command Get-MailServer).OutputType.Name | Should -Contain 'MailOps.Core.Hosting.MailServer'
    }

    It 'lists the servers of the session' {
        (Get-MailServer).Id | Should -Contain $server.Id
        (Get-MailServer -Id $server.Id).QueuePath | Should -Be $queue
    }

    It 'pipes a server to Get-MailQueue by its QueuePath' {
        Submit-TestMessage -QueuePath $queue -Subject 'via server' | Out-Null
        (Get-MailServer -Id $server.Id | Get-MailQueue).Subject | Should -Contain 'via server'
    }

    It 'keeps the server log' {
        $server.Log.Lines.Message -join "`n" | Should -Match 'serving on 127\.0\.0\.1:'
    }

    It 'reports an unknown id as ServerNotFound' {
        Get-MailServer -Id 987654 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ServerNotFound,*'
    }
}
