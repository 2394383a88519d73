using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Cli;

/// <summary>
/// <c>mailops install</c> / <c>uninstall</c> (docs/install.md): MailOps as the system's MTA. A
/// service account owns the queue and runs the server; every local user hands in mail through
/// the maildrop with the setgid drop helper, installed as <c>sendmail</c> and <c>mailq</c>; a
/// systemd unit runs <c>mailops serve</c>. <c>--root DIR</c> makes a working installation under
/// DIR (every path, including those written into files, is under it): for tests and trials.
/// </summary>
internal static class InstallCommand
{
    private sealed record Layout(string Root, string Lib, string ConfigDir, string ConfigFile, string Queue, string MaildirRoot, string Unit, string Sendmail, string Mailq, string MailopsLink)
    {
        public static Layout Under(string root, string? queue, string? maildirRoot)
        {
            string R(string path) => Path.Join(root.TrimEnd('/'), path);
            return new Layout(root, R("/usr/lib/mailops"), R("/etc/mailops"), R("/etc/mailops/config.json"),
                queue ?? R("/var/spool/mailops"), maildirRoot ?? R("/var/lib/mailops/mail"), R("/etc/systemd/system/mailops.service"),
                R("/usr/sbin/sendmail"), R("/usr/bin/mailq"), R("/usr/bin/mailops"));
        }

        public string Helper => Path.Combine(Lib, "mailops-drop");
    }

    public static int Install(string[] args)
    {
        var a = CliArgs.Parse(args, ["--root", "--user", "--drop-group", "--queue", "--maildir-root", "--from", "--listen", "--hostname"], ["--force"]);
        RequireRoot("install");
        var layout = Layout.Under(Path.GetFullPath(a.Value("--root") ?? "/"), a.Value("--queue"), a.Value("--maildir-root"));
        string user = a.Value("--user") ?? "mailops", group = a.Value("--drop-group") ?? "mailops-drop";
        string from = Path.GetFullPath(a.Value("--from") ?? AppContext.BaseDirectory);
        if (!File.Exists(Path.Combine(from, "mailops")) || !File.Exists(Path.Combine(from, "mailops-drop")))
            throw new CliException(ExitCodes.Failure, $"{from} must hold mailops and the drop helper mailops-drop (publish both: docs/install.md).");
        foreach (var link in new[] { layout.Sendmail, layout.Mailq, layout.MailopsLink })
            if (Exists(link) && !IsOurs(link, layout) && !a.Flag("--force"))
                throw new CliException(ExitCodes.Failure, $"{link} exists and is not MailOps's (another MTA?). Remove it, or pass --force to replace it (it is kept as {link}.pre-mailops).");

        // 1. Accounts: a drop group that only the setgid helper lends to users, and the service account.
        if (!Run("getent", "group", group)) Must("groupadd", "--system", group);
        if (!Run("getent", "passwd", user))
            Must("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--groups", group, user);
        else Must("usermod", "--append", "--groups", group, user);

        // 2. Programs: a copy readable by the service account (the build may sit in a private home).
        CopyTree(from, layout.Lib);
        File.WriteAllText(Path.Combine(layout.Lib, DropFile.SystemConfName), $"# Written by mailops install: the system queue that sendmail and mailq serve.\nqueue={layout.Queue}\nconfig={layout.ConfigFile}\n");
        Must("chown", $"root:{group}", layout.Helper);
        Must("chmod", "2755", layout.Helper); // setgid: may write the maildrop and reach the server's sockets, nothing else

        // 3. The queue: the root lets the drop group pass (0710), the maildrop lets it create (0730,
        // never list); the rest the server makes private (0700) when it first opens the queue.
        CreateDirectory(layout.Queue, $"{user}:{group}", "0710");
        CreateDirectory(Path.Combine(layout.Queue, DropFile.DirectoryName), $"{user}:{group}", "0730");
        CreateDirectory(layout.MaildirRoot, $"{user}:{user}", "0700");

        // 4. Configuration, kept when there is one: secrets may go in it, so 0640 root:<service group>.
        Directory.CreateDirectory(layout.ConfigDir);
        if (!File.Exists(layout.ConfigFile))
        {
            string host = a.Value("--hostname") ?? Environment.MachineName.ToLowerInvariant();
            var listen = a.Values("--listen").Count > 0 ? a.Values("--listen").ToList() : ["127.0.0.1:25", "[::1]:25"];
            var config = new Dictionary<string, object>
            {
                ["HostName"] = host,
                ["LocalDomains"] = new[] { "localhost", host },
                // Every local part of the local domains has a Maildir (cron's mail to root, a script's to www-data).
                ["Mailboxes"] = new[] { "*@localhost", "*@" + host },
                ["Listen"] = listen,
                ["QueuePath"] = layout.Queue,
                ["MaildirRoot"] = layout.MaildirRoot,
            };
            File.WriteAllText(layout.ConfigFile, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        Must("chown", $"root:{user}", layout.ConfigFile);
        Must("chmod", "0640", layout.ConfigFile);

        // 5. sendmail and mailq are the helper (fast, and the only way in for other users); mailops is the CLI.
        Link(layout.Sendmail, layout.Helper, layout);
        Link(layout.Mailq, layout.Helper, layout);
        Link(layout.MailopsLink, Path.Combine(layout.Lib, "mailops"), layout);

        // 6. The service.
        Directory.CreateDirectory(Path.GetDirectoryName(layout.Unit)!);
        File.WriteAllText(layout.Unit, Unit(layout, user, group));

        Console.Out.WriteLine($"""
            MailOps installed{(layout.Root == "/" ? "" : " under " + layout.Root)}:
              programs     {layout.Lib} (sendmail: {layout.Sendmail}, mailq: {layout.Mailq})
              queue        {layout.Queue} (owned by {user}; maildrop group {group})
              mail         {layout.MaildirRoot}
              config       {layout.ConfigFile}
              service      {layout.Unit}
            Start it with: systemctl daemon-reload && systemctl enable --now mailops
            """);
        return ExitCodes.Ok;
    }

    public static int Uninstall(string[] args)
    {
        var a = CliArgs.Parse(args, ["--root", "--user", "--drop-group", "--queue", "--maildir-root"], ["--purge"]);
        RequireRoot("uninstall");
        var layout = Layout.Under(Path.GetFullPath(a.Value("--root") ?? "/"), a.Value("--queue"), a.Value("--maildir-root"));
        string user = a.Value("--user") ?? "mailops", group = a.Value("--drop-group") ?? "mailops-drop";
        foreach (var link in new[] { layout.Sendmail, layout.Mailq, layout.MailopsLink })
        {
            if (!IsOurs(link, layout)) continue;
            File.Delete(link);
            if (Exists(link + ".pre-mailops")) File.Move(link + ".pre-mailops", link);
        }
        if (File.Exists(layout.Unit)) File.Delete(layout.Unit);
        if (Directory.Exists(layout.Lib)) Directory.Delete(layout.Lib, recursive: true);
        if (a.Flag("--purge"))
        {
            if (Directory.Exists(layout.Queue)) Directory.Delete(layout.Queue, recursive: true);
            if (Directory.Exists(layout.ConfigDir)) Directory.Delete(layout.ConfigDir, recursive: true);
            if (Run("getent", "passwd", user)) Must("userdel", user);
            if (Run("getent", "group", user)) Run("groupdel", user);
            if (Run("getent", "group", group)) Must("groupdel", group);
        }
        Console.Out.WriteLine(a.Flag("--purge")
            ? $"MailOps uninstalled; its queue, configuration and accounts are removed. Delivered mail stays in {layout.MaildirRoot}."
            : $"MailOps uninstalled. Kept: the queue {layout.Queue}, the configuration {layout.ConfigFile}, the accounts {user} and {group}, and the mail in {layout.MaildirRoot} (--purge removes all but the mail).");
        return ExitCodes.Ok;
    }

    private static string Unit(Layout layout, string user, string group)
    {
        // The runtime the CLI runs on (its apphost looks there too, but a service should not depend on a search).
        string dotnetRoot = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        return $"""
            # Written by mailops install (docs/install.md).
            [Unit]
            Description=MailOps mail transfer agent
            After=network-online.target
            Wants=network-online.target

            [Service]
            # READY=1 once the listener is bound and the queue is served; SIGTERM finishes the
            # messages being received and the deliveries in flight, then exits.
            Type=notify
            NotifyAccess=main
            ExecStart={Path.Combine(layout.Lib, "mailops")} serve --config {layout.ConfigFile}
            # systemctl reload: the configuration is read again; a broken one is refused and logged.
            ExecReload=/bin/kill -HUP $MAINPID
            KillSignal=SIGTERM
            TimeoutStopSec=90
            Restart=on-failure
            RestartSec=5s
            User={user}
            Group={user}
            SupplementaryGroups={group}
            Environment=DOTNET_ROOT={dotnetRoot}
            UMask=0077
            # Port 25 without root; nothing else.
            AmbientCapabilities=CAP_NET_BIND_SERVICE
            CapabilityBoundingSet=CAP_NET_BIND_SERVICE
            NoNewPrivileges=yes
            ProtectSystem=strict
            ReadWritePaths={layout.Queue} {layout.MaildirRoot}
            ProtectHome=yes
            PrivateTmp=yes
            PrivateDevices=yes
            ProtectKernelTunables=yes
            ProtectKernelModules=yes
            ProtectKernelLogs=yes
            ProtectControlGroups=yes
            ProtectClock=yes
            ProtectHostname=yes
            RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
            RestrictNamespaces=yes
            RestrictRealtime=yes
            RestrictSUIDSGID=yes
            LockPersonality=yes
            RemoveIPC=yes
            PrivateMounts=yes
            ProtectProc=invisible
            SystemCallArchitectures=native
            SystemCallFilter=@system-service
            SystemCallErrorNumber=EPERM
            # Not MemoryDenyWriteExecute: the .NET JIT writes code.

            [Install]
            WantedBy=multi-user.target

            """;
    }

    private static void RequireRoot(string verb)
    {
        if (!OperatingSystem.IsLinux()) throw new CliException(ExitCodes.Failure, $"mailops {verb} sets up Linux with systemd; for Windows see docs/install.md.");
        if (Posix.EffectiveUserId != 0) throw new CliException(ExitCodes.NoPermission, $"mailops {verb} must run as root.");
    }

    private static bool Exists(string path) => File.Exists(path) || new FileInfo(path).LinkTarget is not null;

    private static bool IsOurs(string link, Layout layout) =>
        new FileInfo(link).LinkTarget is { } target && Path.GetFullPath(target, Path.GetDirectoryName(link)!).StartsWith(layout.Lib + "/", StringComparison.Ordinal);

    private static void Link(string link, string target, Layout layout)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (IsOurs(link, layout)) File.Delete(link);
        else if (Exists(link)) File.Move(link, link + ".pre-mailops", overwrite: true);
        File.CreateSymbolicLink(link, target);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(file);
            if (name == DropFile.SystemConfName || name.EndsWith(".pdb", StringComparison.Ordinal) || name.EndsWith(".dbg", StringComparison.Ordinal)) continue;
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            File.Copy(file, target + ".new", overwrite: true);
            File.Move(target + ".new", target, overwrite: true); // a running copy keeps its old file
        }
        Must("chmod", "-R", "u=rwX,go=rX", to);
        Must("chown", "-R", "root:root", to);
    }

    private static void CreateDirectory(string path, string owner, string mode)
    {
        Directory.CreateDirectory(path);
        Must("chown", owner, path);
        Must("chmod", mode, path);
    }

    /// <returns>Whether it succeeded, and what it said on stderr.</returns>
    private static (bool Ok, string Error) Execute(string program, string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode == 0, error.Trim());
    }

    private static bool Run(string program, params string[] args) => Execute(program, args).Ok;

    private static void Must(string program, params string[] args)
    {
        var (ok, error) = Execute(program, args);
        if (!ok) throw new CliException(ExitCodes.Failure, $"{program} {string.Join(' ', args)} failed: {error}");
    }
}
