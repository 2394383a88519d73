namespace MailOps.Tests.PowerShell;

/// <summary>
/// The module driven through the real PowerShell engine (System.Management.Automation 7.6 in
/// tests/MailOps.PsHost): Import-Module of the manifest, parameter binding, pipelines, -WhatIf,
/// ErrorIds, help, servers and the dependency isolation. pwsh's own modules are not there, so the
/// scripts use only the engine's core cmdlets and .NET. The Pester files under tests/Pester cover
/// the same ground for review with real pwsh.
/// </summary>
public sealed class PowerShellHostTests
{
    // Assertion helper and module import shared by every script.
    private const string Prelude = """
        param([string] $Manifest, [string] $Work)
        $ErrorActionPreference = 'Stop'
        function Assert([bool] $Condition, [string] $Message) { if (-not $Condition) { throw "assertion failed: $Message" } }
        Import-Module $Manifest
        """;

    private static async Task<ProcessResult> RunScriptAsync(TempQueue work, string body, bool conflictingDependencies = false)
    {
        string script = Path.Combine(work.Root, "test.ps1");
        await File.WriteAllTextAsync(script, Prelude + "\n" + body);
        var args = new List<string> { Programs.PsHostDll };
        if (conflictingDependencies) args.AddRange(["--conflicting-dependencies", Path.Combine(work.Root, "other-module")]);
        args.AddRange([script, Programs.ModuleManifest, work.Root]);
        return await Programs.RunAsync("dotnet", args, timeout: TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task The_manifest_exports_the_cmdlets_with_help_and_output_types()
    {
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, """
            $names = @(Get-Command -Module MailOps | ForEach-Object Name)
            Assert ($names.Count -eq 22) "22 cmdlets, got $($names -join ',')"
            foreach ($name in $names) {
                $cmd = Get-Command $name
                Assert ($cmd.CommandType -eq 'Cmdlet') "$name is a cmdlet"
                Assert ($cmd.OutputType.Count -ge 1) "$name declares its output type"
                $help = Get-Help $name -Full
                Assert (-not [string]::IsNullOrWhiteSpace($help.Synopsis) -and $help.Synopsis -notlike "$name *") "$name has a written synopsis"
                Assert (@($help.examples.example).Count -ge 1) "$name has examples"
                "$name ok"
            }
            $about = Get-Help about_MailOps
            Assert ("$about" -like '*qmail*') 'about_MailOps explains the qmail lineage'
            $p = (Get-Command Start-MailServer).Parameters
            foreach ($key in 'ConfigPath','QueuePath','Listen','HostName','LocalDomain','RelayDomain','Mailbox','RelayClient','MaildirRoot','SmartHost','DnsServer','RemotePort','HoldIncoming','Wait') {
                Assert $p.ContainsKey($key) "Start-MailServer -$key"
            }
            Assert ((Get-Command Remove-QueuedMail).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact -eq 'High') 'Remove-QueuedMail is High impact'
            'done'
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("Submit-MailMessage ok", r.Stdout);
        Assert.EndsWith("done", r.Stdout.Trim());
    }

    [Fact]
    public async Task Queue_pipelines_bind_by_property_name_and_WhatIf_changes_nothing()
    {
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, """
            $q = [IO.Path]::Combine($Work, 'q')
            $a = Submit-MailMessage -QueuePath $q -Force -From 'Alice <alice@example.com>' -To bob@example.org -Bcc secret@example.net -Subject 'one' -Body 'hello'
            $b = Submit-MailMessage -QueuePath $q -Force -From alice@example.com -To carol@example.net -Subject 'two' -Body 'hi'
            Assert ($a.State -eq 'Queued' -and $a.Subject -eq 'one' -and $a.QueuePath -eq $q) 'Submit-MailMessage returns the QueuedMail'
            Assert ($a.GetRecipients() -contains 'secret@example.net') 'Bcc is an envelope recipient'

            # -WhatIf changes nothing
            Get-MailQueue -QueuePath $q | Suspend-QueuedMail -WhatIf
            Get-MailQueue -QueuePath $q | Remove-QueuedMail -WhatIf
            Assert (@(Get-MailQueue -QueuePath $q -State Queued).Count -eq 2) 'nothing changed under -WhatIf'

            # Get-MailQueue -Domain x | Suspend-QueuedMail acts on that domain only
            Get-MailQueue -QueuePath $q -Domain example.org | Suspend-QueuedMail
            Assert ((Get-MailQueue -QueuePath $q -Id $a.Id).State -eq 'Held') 'the example.org message is held'
            Assert ((Get-MailQueue -QueuePath $q -Id $b.Id).State -eq 'Queued') 'the other one is not'
            $summary = @(Get-MailQueue -QueuePath $q -Summary)
            $org = $summary | Where-Object Domain -eq 'example.org'
            $net = $summary | Where-Object Domain -eq 'example.net'
            Assert ($org.Held -eq 1 -and $net.Recipients -eq 2 -and $net.Held -eq 1 -and $net.Queued -eq 1 -and $summary.Count -eq 2) "summary by domain: $($summary | ForEach-Object { $_.Domain + '=' + $_.Recipients })"

            # Trace from the pipeline
            $events = @(Get-MailQueue -QueuePath $q -Id $a.Id | Trace-MailMessage | ForEach-Object { "$($_.Event)" })
            Assert (($events -join ',') -eq 'Received,Queued,Held,Held') "trace (one Held per recipient): $($events -join ',')"

            # Export: the stored octets, without the Bcc header
            $file = Get-MailQueue -QueuePath $q -Id $a.Id | Export-QueuedMail -Destination ([IO.Path]::Combine($Work, 'out'))
            $text = [IO.File]::ReadAllText($file.FullName)
            Assert ($text -like '*Subject: one*' -and $text -notlike '*secret@example.net*') 'exported without Bcc'

            Get-MailQueue -QueuePath $q -State Held | Resume-QueuedMail
            Assert (@(Get-MailQueue -QueuePath $q -State Held).Count -eq 0) 'released'
            Get-MailQueue -QueuePath $q -Id $b.Id | Remove-QueuedMail -Confirm:$false
            Assert (@(Get-MailQueue -QueuePath $q).Count -eq 1) 'removed'

            # Errors carry stable ErrorIds
            Get-MailQueue -QueuePath ([IO.Path]::Combine($Work, 'nowhere')) -ErrorAction SilentlyContinue -ErrorVariable e1
            Assert ($e1[0].FullyQualifiedErrorId -like 'QueueNotFound,*') "QueueNotFound: $($e1[0].FullyQualifiedErrorId)"
            Suspend-QueuedMail -QueuePath $q -Id 1k0w010egvrybsqp -ErrorAction SilentlyContinue -ErrorVariable e2
            Assert ($e2[0].FullyQualifiedErrorId -like 'MessageNotFound,*') "MessageNotFound: $($e2[0].FullyQualifiedErrorId)"
            Submit-MailMessage -QueuePath $q -Force -From a@example.com -To b@example.org -Subject "x`r`nBcc: evil@example.net" -ErrorAction SilentlyContinue -ErrorVariable e3
            Assert ($e3[0].FullyQualifiedErrorId -like 'HeaderInjection,*') "HeaderInjection: $($e3[0].FullyQualifiedErrorId)"
            Submit-MailMessage -QueuePath $q -Force -From a@example.com -To b@example.org -Header @{ 'X-Evil' = "a`nBcc: evil@example.net" } -ErrorAction SilentlyContinue -ErrorVariable e4
            Assert ($e4[0].FullyQualifiedErrorId -like 'HeaderInjection,*') "HeaderInjection in -Header: $($e4[0].FullyQualifiedErrorId)"
            Assert (@(Get-MailQueue -QueuePath $q).Count -eq 1) 'nothing was queued by the refused submissions'
            try { Get-MailQueue -QueuePath $q -State Nonsense; Assert $false 'ValidateSet' } catch { Assert ($_.FullyQualifiedErrorId -like 'ParameterArgumentValidationError,*') $_.FullyQualifiedErrorId }
            Trace-MailMessage -QueuePath $q -Id '<nobody@nowhere>' -ErrorAction SilentlyContinue -ErrorVariable e5
            Assert ($e5[0].FullyQualifiedErrorId -like 'TraceNotFound,*') "TraceNotFound: $($e5[0].FullyQualifiedErrorId)"
            'done'
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.EndsWith("done", r.Stdout.Trim());
    }

    [Fact]
    public async Task Send_QueuedMail_with_no_server_delivers_in_process_and_returns_results()
    {
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, """
            $q = [IO.Path]::Combine($Work, 'q')
            $m = Submit-MailMessage -QueuePath $q -Force -From alice@example.com -To postmaster@localhost -Subject 'local' -Body 'to the maildir'
            $results = @(Get-MailQueue -QueuePath $q | Send-QueuedMail -Wait)
            Assert ($results.Count -eq 1 -and "$($results[0].Outcome)" -eq 'Delivered' -and $results[0].Id -eq $m.Id) "results: $($results | ForEach-Object { "$($_.Id) $($_.Outcome) $($_.Detail)" })"
            Assert (@(Get-MailQueue -QueuePath $q).Count -eq 0) 'the queue is empty'
            $new = [IO.Path]::Combine($Work, 'maildir', 'localhost', 'postmaster', 'new')
            Assert (@([IO.Directory]::GetFiles($new)).Count -eq 1) 'one message in the Maildir'
            $trace = @(Trace-MailMessage -QueuePath $q -Id $m.Id | ForEach-Object { "$($_.Event)" })
            Assert ($trace -contains 'Delivered') "trace after delivery: $($trace -join ',')"
            'done'
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.EndsWith("done", r.Stdout.Trim());
    }

    [Fact]
    public async Task Dependencies_load_in_the_module_context_when_another_module_loaded_other_versions()
    {
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, """
            $versions = @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'MimeKit' } | ForEach-Object { $_.GetName().Version.Major })
            Assert ($versions -contains 99) 'the other module''s MimeKit 99 is loaded first'
            $q = [IO.Path]::Combine($Work, 'q')
            $m = Submit-MailMessage -QueuePath $q -Force -From alice@example.com -To bob@example.org -Subject 'isolated' -Body 'MimeKit from the module context'
            Assert ($m.Subject -eq 'isolated') 'Submit-MailMessage built the message with its own MimeKit'
            $route = @(Resolve-MailExchanger localhost -QueuePath $q)
            Assert ("$($route[0].Kind)" -eq 'Local') 'Resolve-MailExchanger ran with its own DnsClient'
            $contexts = @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'MimeKit' } |
                ForEach-Object { [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($_).Name })
            Assert ($contexts -contains 'MailOps') "MailOps' MimeKit is in its own context: $($contexts -join ',')"
            'done'
            """, conflictingDependencies: true);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.EndsWith("done", r.Stdout.Trim());
    }

    [Fact]
    public async Task The_Pester_files_and_examples_parse_and_use_only_real_parameters()
    {
        // Pester does not run here; this catches what would fail first under real pwsh: a syntax
        // error, or a MailOps cmdlet called with a parameter it does not have.
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, $$"""
            $cmds = @{}; Get-Command -Module MailOps | ForEach-Object { $cmds[$_.Name] = $_ }
            $files = @([IO.Directory]::GetFiles('{{Path.Combine(Programs.RepoRoot, "tests", "Pester")}}', '*.ps1')) + @([IO.Directory]::GetFiles('{{Path.Combine(Programs.RepoRoot, "examples")}}', '*.ps1'))
            Assert ($files.Count -ge 16) "Pester files and examples: $($files.Count)"
            $problems = foreach ($f in $files) {
                $tokens = $null; $errors = $null
                $ast = [System.Management.Automation.Language.Parser]::ParseFile($f, [ref]$tokens, [ref]$errors)
                foreach ($e in $errors) { "$f line $($e.Extent.StartLineNumber): $($e.Message)" }
                foreach ($c in $ast.FindAll({ $args[0] -is [System.Management.Automation.Language.CommandAst] }, $true)) {
                    $name = $c.GetCommandName()
                    if (-not $name -or -not $cmds.ContainsKey($name)) { continue }
                    foreach ($p in $c.CommandElements | Where-Object { $_ -is [System.Management.Automation.Language.CommandParameterAst] }) {
                        if (-not @($cmds[$name].Parameters.Keys | Where-Object { $_ -like "$($p.ParameterName)*" })) { "$f line $($p.Extent.StartLineNumber): $name has no -$($p.ParameterName)" }
                    }
                }
            }
            Assert (-not $problems) ($problems -join "`n")
            $describes = foreach ($f in [IO.Directory]::GetFiles('{{Path.Combine(Programs.RepoRoot, "tests", "Pester")}}', '*.Tests.ps1')) { [IO.Path]::GetFileName($f) -replace '\.Tests\.ps1$', '' }
            foreach ($name in $cmds.Keys) { Assert ($describes -contains $name) "no Pester file for $name" }
            'done'
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.EndsWith("done", r.Stdout.Trim());
    }

    [Fact]
    public async Task Two_background_servers_receive_mail_sent_with_MailKit_and_stop_gracefully()
    {
        using var work = new TempQueue();
        var r = await RunScriptAsync(work, """
            # The client is MailKit, loaded into PowerShell's own context as any script would load it.
            $deps = [IO.Path]::Combine([IO.Path]::GetDirectoryName($Manifest), 'module', 'bin', 'dependencies')
            $mimeKit = [Reflection.Assembly]::LoadFrom([IO.Path]::Combine($deps, 'MimeKit.dll'))
            $mailKit = [Reflection.Assembly]::LoadFrom([IO.Path]::Combine($deps, 'MailKit.dll'))
            function Send-WithMailKit([int] $Port, [string] $To, [string] $Subject) {
                $message = [Activator]::CreateInstance($mimeKit.GetType('MimeKit.MimeMessage'))
                $message.From.Add($mimeKit.GetType('MimeKit.MailboxAddress')::Parse('sender@example.com'))
                $message.To.Add($mimeKit.GetType('MimeKit.MailboxAddress')::Parse($To))
                $message.Subject = $Subject
                $body = [Activator]::CreateInstance($mimeKit.GetType('MimeKit.TextPart'), @('plain'))
                $body.Text = 'sent with MailKit'
                $message.Body = $body
                $client = [Activator]::CreateInstance($mailKit.GetType('MailKit.Net.Smtp.SmtpClient'))
                $client.Connect('127.0.0.1', $Port, $false, [Threading.CancellationToken]::None)
                $null = $client.Send($message, [Threading.CancellationToken]::None, $null)
                $client.Disconnect($true, [Threading.CancellationToken]::None)
                $client.Dispose()
            }
            $s1 = Start-MailServer -QueuePath ([IO.Path]::Combine($Work, 'q1')) -Listen 127.0.0.1:0 -NoTls -NoDelivery -HostName one.test
            $s2 = Start-MailServer -QueuePath ([IO.Path]::Combine($Work, 'q2')) -Listen 127.0.0.1:0 -NoTls -NoDelivery -HostName two.test
            Assert (@(Get-MailServer).Count -eq 2) 'two servers in the session'
            Send-WithMailKit $s1.Endpoints[0].Port 'rcpt@one.example' 'to one'
            Send-WithMailKit $s2.Endpoints[0].Port 'rcpt@two.example' 'to two'
            $in1 = @(Get-MailServer -Id $s1.Id | Get-MailQueue)
            $in2 = @(Get-MailServer -Id $s2.Id | Get-MailQueue)
            Assert ($in1.Count -eq 1 -and $in1[0].Subject -eq 'to one') "queue one: $($in1.Subject)"
            Assert ($in2.Count -eq 1 -and $in2[0].Subject -eq 'to two') "queue two: $($in2.Subject)"
            try { Start-MailServer -QueuePath ([IO.Path]::Combine($Work, 'q1')) -Listen 127.0.0.1:0; Assert $false 'a second server on a served queue' }
            catch { Assert ($_.FullyQualifiedErrorId -like 'QueueInUse,*') $_.FullyQualifiedErrorId }
            Get-MailServer | Stop-MailServer -Force
            Assert ("$($s1.State)" -eq 'Stopped' -and "$($s2.State)" -eq 'Stopped') 'both stopped'
            Assert (@(Get-MailServer).Count -eq 0) 'none left'
            'done'
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.EndsWith("done", r.Stdout.Trim());
    }
}
