using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace MailOps.Tests.PowerShell;

/// <summary>
/// The built cmdlet assembly read with MetadataLoadContext (nothing of it runs): the conventions
/// of about_MailOps and the house style, the manifest and the format file.
/// </summary>
public sealed class ModuleMetadataTests : IDisposable
{
    private static readonly string Bin = Path.Combine(Programs.RepoRoot, "module", "bin");
    private readonly MetadataLoadContext _context;
    private readonly Assembly _module;

    // PowerShell's approved verbs that the module may use (Get-Verb).
    private static readonly HashSet<string> ApprovedVerbs =
    [
        "Get", "Set", "New", "Remove", "Start", "Stop", "Suspend", "Resume", "Send", "Submit", "Trace",
        "Export", "Import", "Resolve", "Test", "Invoke", "Add", "Clear", "Show", "Find", "Search", "Restart", "Wait", "Watch", "Update",
    ];

    private static readonly HashSet<string> StateChangingVerbs = ["Start", "Stop", "Suspend", "Resume", "Remove", "Send", "Submit", "Export", "Set", "New", "Add", "Clear", "Update"];

    public ModuleMetadataTests()
    {
        var paths = Directory.GetFiles(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "*.dll").ToList();
        paths.AddRange(Directory.GetFiles(Bin, "*.dll"));
        paths.AddRange(Directory.GetFiles(Path.Combine(Bin, "dependencies"), "*.dll"));
        paths.Add(Path.Combine(Path.GetDirectoryName(Programs.PsHostDll)!, "runtimes", OperatingSystem.IsWindows() ? "win" : "unix", "lib", "net10.0", "System.Management.Automation.dll"));
        _context = new MetadataLoadContext(new PathAssemblyResolver(paths.GroupBy(Path.GetFileName).Select(g => g.First())));
        _module = _context.LoadFromAssemblyPath(Path.Combine(Bin, "MailOps.PowerShell.dll"));
    }

    public void Dispose() => _context.Dispose();

    private IEnumerable<(Type Type, CustomAttributeData Cmdlet)> Cmdlets() =>
        from t in _module.GetExportedTypes()
        let a = t.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == "System.Management.Automation.CmdletAttribute")
        where a is not null
        select (t, a);

    /// <summary>Every type named by an [OutputType] of a cmdlet.</summary>
    private IEnumerable<Type> OutputTypes() =>
        Cmdlets()
            .SelectMany(c => c.Type.GetCustomAttributesData().Where(a => a.AttributeType.Name == "OutputTypeAttribute"))
            .SelectMany(a => a.ConstructorArguments.SelectMany(arg => arg.Value is IEnumerable<CustomAttributeTypedArgument> many ? many.Select(m => m.Value) : [arg.Value]))
            .OfType<Type>();

    private static string NameOf(CustomAttributeData cmdlet) => $"{cmdlet.ConstructorArguments[0].Value}-{cmdlet.ConstructorArguments[1].Value}";

    private static T? Named<T>(CustomAttributeData a, string name) =>
        a.NamedArguments.Where(n => n.MemberName == name).Select(n => (T?)n.TypedValue.Value).FirstOrDefault();

    [Fact]
    public void Every_cmdlet_uses_an_approved_verb_a_class_name_after_it_and_declares_its_output()
    {
        var cmdlets = Cmdlets().ToList();
        Assert.Equal(22, cmdlets.Count);
        foreach (var (type, cmdlet) in cmdlets)
        {
            string name = NameOf(cmdlet);
            Assert.Contains((string)cmdlet.ConstructorArguments[0].Value!, ApprovedVerbs);
            Assert.Equal(name.Replace("-", "") + "Command", type.Name);
            Assert.True(type.GetCustomAttributesData().Any(a => a.AttributeType.Name == "OutputTypeAttribute"), $"{name} has no [OutputType]");
        }
    }

    [Fact]
    public void State_changing_cmdlets_support_ShouldProcess_and_Remove_is_high_impact()
    {
        foreach (var (_, cmdlet) in Cmdlets())
        {
            string verb = (string)cmdlet.ConstructorArguments[0].Value!;
            if (!StateChangingVerbs.Contains(verb)) continue;
            // New-MailMessage makes an object in memory and changes nothing (as New-TimeSpan, New-Guid).
            if (NameOf(cmdlet) == "New-MailMessage") continue;
            Assert.True(Named<bool>(cmdlet, "SupportsShouldProcess"), $"{NameOf(cmdlet)} must support -WhatIf/-Confirm");
        }
        var remove = Cmdlets().Single(c => NameOf(c.Cmdlet) == "Remove-QueuedMail").Cmdlet;
        Assert.Equal(3, Named<int>(remove, "ConfirmImpact")); // ConfirmImpact.High
    }

    [Fact]
    public void Parameters_bound_by_property_name_match_a_property_of_some_output_type()
    {
        var outputProperties = OutputTypes()
            .SelectMany(t => t.GetProperties().Select(p => p.Name))
            .Concat(["FullName"]) // FileInfo, for Submit-MailMessage's -Path alias
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        int checkedCount = 0;
        foreach (var (type, cmdlet) in Cmdlets())
            foreach (var property in type.GetProperties())
                foreach (var parameter in property.GetCustomAttributesData().Where(a => a.AttributeType.Name == "ParameterAttribute"))
                {
                    if (!Named<bool>(parameter, "ValueFromPipelineByPropertyName")) continue;
                    var aliases = property.GetCustomAttributesData().Where(a => a.AttributeType.Name == "AliasAttribute")
                        .SelectMany(a => ((IEnumerable<CustomAttributeTypedArgument>)a.ConstructorArguments[0].Value!).Select(v => (string)v.Value!));
                    Assert.True(aliases.Prepend(property.Name).Any(outputProperties.Contains), $"{NameOf(cmdlet)} -{property.Name} binds by a property name no MailOps object has");
                    checkedCount++;
                }
        Assert.True(checkedCount >= 10, $"only {checkedCount} pipeline parameters found");
    }

    [Fact]
    public void The_cmdlet_assembly_references_no_isolated_dependency()
    {
        // MailKit, MimeKit, DnsClient and logging load in the module's own context; a reference
        // from this assembly would be resolved in PowerShell's and could meet another version.
        var references = _module.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Contains("MailOps.Core", references);
        var isolated = Directory.GetFiles(Path.Combine(Bin, "dependencies"), "*.dll").Select(Path.GetFileNameWithoutExtension).Where(n => n != "MailOps.Core");
        Assert.Empty(references.Intersect(isolated));
        Assert.False(File.Exists(Path.Combine(Bin, "MimeKit.dll")), "dependencies must not sit next to the cmdlet assembly");
    }

    [Fact]
    public void The_manifest_exports_exactly_the_cmdlets_of_the_assembly()
    {
        string manifest = File.ReadAllText(Programs.ModuleManifest);
        var block = Regex.Match(manifest, @"CmdletsToExport\s*=\s*@\((?<list>[^)]*)\)").Groups["list"].Value;
        var exported = Regex.Matches(block, @"'([^']+)'").Select(m => m.Groups[1].Value).OrderBy(n => n).ToList();
        Assert.Equal(Cmdlets().Select(c => NameOf(c.Cmdlet)).OrderBy(n => n).ToList(), exported);
        Assert.Matches(@"CompatiblePSEditions\s*=\s*@\('Core'\)", manifest);
        Assert.Matches(@"PowerShellVersion\s*=\s*'7.4'", manifest);
        Assert.Matches(@"FormatsToProcess\s*=\s*@\('module/MailOps.format.ps1xml'\)", manifest);
        // No placeholder addresses: ProjectUri and LicenseUri come with a real repository.
        Assert.DoesNotContain("github.com/mailops", manifest);
    }

    [Fact]
    public void The_format_file_names_existing_types_and_properties_and_covers_every_output_type()
    {
        var doc = XDocument.Load(Path.Combine(Programs.RepoRoot, "module", "MailOps.format.ps1xml"));
        var outputTypes = OutputTypes().Where(t => t.Assembly.GetName().Name == "MailOps.Core").Select(t => t.FullName!).ToHashSet();
        var viewed = new HashSet<string>();
        foreach (var view in doc.Descendants("View"))
        {
            string typeName = view.Element("ViewSelectedBy")!.Element("TypeName")!.Value;
            var type = _context.LoadFromAssemblyName("MailOps.Core").GetType(typeName);
            Assert.True(type is not null, $"{typeName} does not exist");
            viewed.Add(typeName);
            var headers = view.Descendants("TableColumnHeader").Count();
            var items = view.Descendants("TableColumnItem").ToList();
            Assert.Equal(headers, items.Count);
            foreach (var item in items.Concat(view.Descendants("ListItem")).Concat(view.Descendants("GroupBy")))
            {
                if (item.Element("PropertyName") is { } property)
                    Assert.True(type!.GetProperty(property.Value) is not null, $"{typeName} has no property {property.Value}");
                else foreach (Match m in Regex.Matches(item.Element("ScriptBlock")!.Value, @"\$_\.(\w+)(\()?"))
                {
                    string member = m.Groups[1].Value;
                    bool call = m.Groups[2].Success;
                    Assert.True(call ? type!.GetMethod(member, Type.EmptyTypes) is not null : type!.GetProperty(member) is not null,
                        $"{typeName} has no {(call ? "method" : "property")} {member}");
                }
            }
        }
        Assert.Empty(outputTypes.Except(viewed));
    }

    [Fact]
    public void The_committed_help_is_built_from_the_markdown_and_documents_every_parameter()
    {
        string built = Path.Combine(Path.GetTempPath(), "mailops-help-" + Guid.NewGuid().ToString("N") + ".xml");
        try
        {
            var r = Programs.RunAsync("python3", [Path.Combine(Programs.RepoRoot, "docs", "help", "build-maml.py"), built]).GetAwaiter().GetResult();
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal(File.ReadAllText(Path.Combine(Programs.RepoRoot, "module", "en-US", "MailOps.PowerShell.dll-Help.xml")), File.ReadAllText(built));
        }
        finally
        {
            File.Delete(built);
        }
        foreach (var (type, cmdlet) in Cmdlets())
        {
            string name = NameOf(cmdlet);
            string md = File.ReadAllText(Path.Combine(Programs.RepoRoot, "docs", "help", name + ".md"));
            foreach (var property in type.GetProperties().Where(p => p.GetCustomAttributesData().Any(a => a.AttributeType.Name == "ParameterAttribute")))
                Assert.True(md.Contains("### -" + property.Name + "\n"), $"{name}.md does not document -{property.Name}");
            Assert.Contains("## EXAMPLES", md);
        }
    }
}
