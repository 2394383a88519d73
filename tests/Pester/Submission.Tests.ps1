#Requires -Version 7.4
# The submission port (Listen '127.0.0.1:0/submission'): a MailKit client, as a PowerShell script
# would use it, submits after STARTTLS with a PSCredential; a wrong password is refused.
BeforeAll {
    . $PSScriptRoot/MailOps.TestHelpers.ps1
    # Certificates of the test server are self-signed: accept any (a compiled delegate, called on any thread).
    if (-not ('SubmissionTestTls' -as [type])) {
        Add-Type -TypeDefinition @'
public static class SubmissionTestTls {
    public static bool AcceptAny(object s, System.Security.Cryptography.X509Certificates.X509Certificate c,
        System.Security.Cryptography.X509Certificates.X509Chain ch, System.Net.Security.SslPolicyErrors e) => true;
}
'@
    }
    $mailops = @('Debug', 'Release') | ForEach-Object { Join-Path $script:RepoRoot 'src' 'MailOps.Cli' 'bin' $_ 'net10.0' 'mailops' } |
        Where-Object { Test-Path $_ } | Select-Object -First 1
    $hash = 'correct horse' | & $mailops passwd --iterations 1000
    $config = Join-Path $TestDrive 'submission.json'
    @{ HostName = 'mx.pester.test'; Users = @(@{ Name = 'alice@example.com'; PasswordHash = $hash }) } | ConvertTo-Json -Depth 4 | Set-Content $config
    [IO.File]::SetUnixFileMode($config, [IO.UnixFileMode]'UserRead, UserWrite') # it holds a password hash
    $queue = New-TestQueuePath
    $server = Start-MailServer -ConfigPath $config -QueuePath $queue -Listen '127.0.0.1:0/submission' -NoDelivery

    function Send-Submission([pscredential] $Credential) {
        $kits = Get-MailKitAssemblies
        $client = [Activator]::CreateInstance($kits.MailKit.GetType('MailKit.Net.Smtp.SmtpClient'))
        try {
            $client.ServerCertificateValidationCallback = [Delegate]::CreateDelegate([System.Net.Security.RemoteCertificateValidationCallback], [SubmissionTestTls].GetMethod('AcceptAny'))
            $starttls = [Enum]::Parse($kits.MailKit.GetType('MailKit.Security.SecureSocketOptions'), 'StartTls')
            $client.Connect('127.0.0.1', $server.Endpoints[0].Port, $starttls, [Threading.CancellationToken]::None)
            $client.Authenticate($Credential.GetNetworkCredential(), [Threading.CancellationToken]::None)
            $message = New-TestMimeMessage -From 'alice@example.com' -To 'bob@example.org' -Subject 'submitted from PowerShell'
            $null = $client.Send($message, [Threading.CancellationToken]::None, $null)
            $client.Disconnect($true, [Threading.CancellationToken]::None)
        }
        finally {
            $client.Dispose()
        }
    }
}

AfterAll {
    $server | Stop-MailServer
}

Describe 'Submission with a PSCredential' {
    It 'submits after STARTTLS and AUTH with the right password' {
        $credential = [pscredential]::new('alice@example.com', (ConvertTo-SecureString 'correct horse' -AsPlainText -Force))
        Send-Submission -Credential $credential
        $queued = Get-MailQueue -QueuePath $queue
        $queued | Should -HaveCount 1
        $queued.Subject | Should -Be 'submitted from PowerShell'
        (Trace-MailMessage -QueuePath $queue -Id $queued.Id | Out-String) | Should -Match 'alice@example.com'
    }

    It 'is refused with a wrong password, and nothing more is queued' {
        $wrong = [pscredential]::new('alice@example.com', (ConvertTo-SecureString 'wrong' -AsPlainText -Force))
        { Send-Submission -Credential $wrong } | Should -Throw '*535*'
        Get-MailQueue -QueuePath $queue | Should -HaveCount 1
    }
}
