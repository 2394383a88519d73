# Shared by every *.Tests.ps1: imports the built module and gives each test a fresh queue.
# Dot-source it in BeforeAll:  . $PSScriptRoot/MailOps.TestHelpers.ps1
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..' '..')).Path
Import-Module (Join-Path $script:RepoRoot 'MailOps.psd1') -Force

# A loopback port nothing listens on at this moment.
function Get-FreePort {
    $probe = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
    $probe.Start(); try { $probe.LocalEndpoint.Port } finally { $probe.Stop() }
}

function New-TestQueuePath {
    Join-Path $TestDrive ([guid]::NewGuid().ToString('N'))
}

# MailKit and MimeKit as a script would load them: into PowerShell's own context, separate from
# the copies MailOps keeps in its AssemblyLoadContext.
function Get-MailKitAssemblies {
    $deps = Join-Path $script:RepoRoot 'module' 'bin' 'dependencies'
    [pscustomobject]@{
        MimeKit = [Reflection.Assembly]::LoadFrom((Join-Path $deps 'MimeKit.dll'))
        MailKit = [Reflection.Assembly]::LoadFrom((Join-Path $deps 'MailKit.dll'))
    }
}

function New-TestMimeMessage([string] $From, [string] $To, [string] $Subject, [string] $Text = 'test') {
    $kits = Get-MailKitAssemblies
    $mailbox = $kits.MimeKit.GetType('MimeKit.MailboxAddress')
    $message = [Activator]::CreateInstance($kits.MimeKit.GetType('MimeKit.MimeMessage'))
    $message.From.Add($mailbox::Parse($From))
    $message.To.Add($mailbox::Parse($To))
    $message.Subject = $Subject
    $body = [Activator]::CreateInstance($kits.MimeKit.GetType('MimeKit.TextPart'), @('plain'))
    $body.Text = $Text
    $message.Body = $body
    $message
}

function Send-TestMailWithMailKit([int] $Port, [string] $From, [string] $To, [string] $Subject) {
    $kits = Get-MailKitAssemblies
    $message = New-TestMimeMessage -From $From -To $To -Subject $Subject
    $client = [Activator]::CreateInstance($kits.MailKit.GetType('MailKit.Net.Smtp.SmtpClient'))
    try {
        $client.Connect('127.0.0.1', $Port, $false, [Threading.CancellationToken]::None)
        $null = $client.Send($message, [Threading.CancellationToken]::None, $null)
        $client.Disconnect($true, [Threading.CancellationToken]::None)
    }
    finally {
        $client.Dispose()
    }
}

function Submit-TestMessage([string] $QueuePath, [string] $To = 'bob@example.org', [string] $Subject = 'test') {
    Submit-MailMessage -QueuePath $QueuePath -Force -From 'alice@example.com' -To $To -Subject $Subject -Body 'hello'
}

# dnsmasq on a free loopback UDP port serving the given dnsmasq record options for .test (under
# timeout(1): it never outlives 60 s). Returns the process and the port; kill with $dns.Process.Kill($true).
function Start-TestDns([string[]] $Record) {
    $udp = [Net.Sockets.UdpClient]::new([Net.IPEndPoint]::new([Net.IPAddress]::Loopback, 0))
    $port = $udp.Client.LocalEndPoint.Port; $udp.Dispose()
    $dnsmasqPath = (Get-Command dnsmasq -ErrorAction SilentlyContinue).Source ?? '/usr/sbin/dnsmasq'
    $out = Join-Path ([IO.Path]::GetTempPath()) "mailops-dns-$port"
    $process = Start-Process timeout -PassThru -RedirectStandardOutput "$out.out" -RedirectStandardError "$out.err" -ArgumentList (@(
        '60', $dnsmasqPath, '--keep-in-foreground', '--no-resolv', '--no-hosts', '--log-facility=-', '--local=/test/',
        "--port=$port", '--listen-address=127.0.0.1', '--bind-interfaces', '--pid-file=') + $Record)
    [pscustomobject]@{ Process = $process; Port = $port }
}
