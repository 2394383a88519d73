using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace MailOps.PowerShell;

/// <summary>
/// The module's own assembly load context. MailOps.Core and its dependencies (MailKit, MimeKit,
/// DnsClient, BouncyCastle) load here from <c>module/bin/dependencies</c>, so another module that
/// already loaded other versions of them into PowerShell's context does not break MailOps, and
/// MailOps does not break it. This assembly references only MailOps.Core of them (a test checks);
/// MimeKit objects arrive as <see cref="object"/>.
/// </summary>
internal sealed class MailOpsLoadContext : AssemblyLoadContext
{
    private readonly string _directory;

    public MailOpsLoadContext(string directory) : base("MailOps")
    {
        _directory = directory;
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // Platform-specific builds first (System.Security.Cryptography.Pkcs has one for Windows).
        string file = assemblyName.Name + ".dll";
        if (OperatingSystem.IsWindows())
        {
            string windows = Path.Combine(_directory, "runtimes", "win", "lib", "net8.0", file);
            if (File.Exists(windows)) return LoadFromAssemblyPath(windows);
        }
        string path = Path.Combine(_directory, file);
        // Anything not shipped with the module (the framework, System.Management.Automation)
        // comes from PowerShell's own context.
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }
}

/// <summary>
/// Runs when the module is imported: PowerShell's context is asked for MailOps.Core the first
/// time a cmdlet touches an engine type, and this hands it the copy in the module's context.
/// Only the engine is served this way; its own references resolve inside <see cref="MailOpsLoadContext"/>.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private static readonly MailOpsLoadContext Context =
        new(Path.Combine(Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location)!, "dependencies"));

    public void OnImport() => AssemblyLoadContext.Default.Resolving += ResolveEngine;

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        ServerRegistry.StopAll();
        AssemblyLoadContext.Default.Resolving -= ResolveEngine;
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext context, AssemblyName name) =>
        name.Name == "MailOps.Core" ? Context.LoadFromAssemblyName(name) : null;
}
