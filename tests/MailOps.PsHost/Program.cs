using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Reflection;
using System.Reflection.Emit;

// Usage: MailOps.PsHost [--conflicting-dependencies DIR] SCRIPT.ps1 [ARG...]
// Output objects go to stdout, one ToString() per line; errors to stderr as
// "error: <FullyQualifiedErrorId>: <message>", warnings as "warning: ...". Exit 1 when the script
// throws (a terminating error), else 0.
var rest = args.ToList();
if (rest.Count >= 2 && rest[0] == "--conflicting-dependencies")
{
    // What another module does when it loads its own MailKit, MimeKit and DnsClient into
    // PowerShell's context first: here, versions 99 that have none of the real types.
    Directory.CreateDirectory(rest[1]);
    foreach (var name in new[] { "MimeKit", "MailKit", "DnsClient" })
    {
        var builder = new PersistedAssemblyBuilder(new AssemblyName(name) { Version = new Version(99, 0, 0, 0) }, typeof(object).Assembly);
        builder.DefineDynamicModule(name).DefineType(name + ".SomeOtherVersion", TypeAttributes.Public).CreateType();
        string path = Path.Combine(rest[1], name + ".dll");
        builder.Save(path);
        Assembly.LoadFrom(path);
    }
    rest.RemoveRange(0, 2);
}
if (rest.Count == 0)
{
    Console.Error.WriteLine("usage: MailOps.PsHost [--conflicting-dependencies DIR] SCRIPT.ps1 [ARG...]");
    return 64;
}

var iss = InitialSessionState.CreateDefault2();
using var ps = PowerShell.Create(iss);
ps.AddCommand(Path.GetFullPath(rest[0]));
foreach (var a in rest.Skip(1)) ps.AddArgument(a);
ps.Streams.Error.DataAdded += (_, e) =>
{
    var record = ps.Streams.Error[e.Index];
    Console.Error.WriteLine($"error: {record.FullyQualifiedErrorId}: {record}");
};
ps.Streams.Warning.DataAdded += (_, e) => Console.Error.WriteLine($"warning: {ps.Streams.Warning[e.Index]}");
var output = new PSDataCollection<PSObject>();
output.DataAdded += (_, e) => Console.Out.WriteLine(output[e.Index]?.ToString());
try
{
    ps.Invoke<PSObject>(null, output);
}
catch (RuntimeException ex)
{
    Console.Error.WriteLine($"terminating: {ex.ErrorRecord.FullyQualifiedErrorId}: {ex.Message}");
    Console.Error.WriteLine(ex.ErrorRecord.ScriptStackTrace);
    if (Environment.GetEnvironmentVariable("MAILOPS_PSHOST_DEBUG") is not null) Console.Error.WriteLine(ex);
    return 1;
}
return 0;
