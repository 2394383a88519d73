#Requires -Version 7.4
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    $queue = New-TestQueuePath
    Submit-TestMessage -QueuePath $queue | Out-Null   # creates the queue and its default configuration
}

Describe 'Resolve-MailExchanger' {
    It 'has the pinned parameter surface' {
        $cmd = Get-Command Resolve-MailExchanger
        foreach ($name in 'Domain', 'DnsServer', 'QueuePath', 'ConfigPath') { $cmd.Parameters.Keys | Should -Contain $name }
        $cmd.OutputType.Name | Should -Contain 'MailOps.Core.Delivery.Remote.MailExchanger'
    }

    It 'routes a local domain to the Maildirs' {
        $route = Resolve-MailExchanger localhost -QueuePath $queue
        $route.Kind | Should -Be 'Local'
    }

    It 'defers when DNS does not answer' {
        # Nothing listens on this loopback port: the lookup times out or is refused.
        $route = Resolve-MailExchanger example.test -QueuePath $queue -DnsServer 127.0.0.1:9
        $route.Kind | Should -Be 'Defer'
        $route.Status | Should -BeLike '4.*'
    }

    It 'takes domains from Get-MailQueue -Summary' {
        $routes = Get-MailQueue -QueuePath $queue -Summary | Resolve-MailExchanger -QueuePath $queue -DnsServer 127.0.0.1:9
        $routes.Domain | Should -Contain 'example.org'
    }

    It 'refuses a malformed DNS server (InvalidConfiguration)' {
        { Resolve-MailExchanger example.org -QueuePath $queue -DnsServer 'not a server' } | Should -Throw -ErrorId 'InvalidConfiguration,*'
    }
}
