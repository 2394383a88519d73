namespace MailOps.Cli;

/// <summary>
/// GNU-style options for the mailops subcommands: --name value, --name=value, flags, and
/// positional arguments; "--" ends options. Unknown options are usage errors.
/// </summary>
internal sealed class CliArgs
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = new();

    public static CliArgs Parse(IEnumerable<string> args, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> flagOptions)
    {
        var parsed = new CliArgs();
        using var e = args.GetEnumerator();
        bool optionsEnded = false;
        while (e.MoveNext())
        {
            string arg = e.Current;
            if (optionsEnded || arg == "-" || !arg.StartsWith('-')) { parsed.Positional.Add(arg); continue; }
            if (arg == "--") { optionsEnded = true; continue; }
            string name = arg, inline = null!;
            bool hasInline = false;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--") && eq > 0) { name = arg[..eq]; inline = arg[(eq + 1)..]; hasInline = true; }
            if (valueOptions.Contains(name))
            {
                string value;
                if (hasInline) value = inline;
                else if (e.MoveNext()) value = e.Current;
                else throw CliException.Usage($"{name} needs a value.");
                if (!parsed._values.TryGetValue(name, out var list)) parsed._values[name] = list = new();
                list.Add(value);
            }
            else if (flagOptions.Contains(name) && !hasInline) parsed._flags.Add(name);
            else throw CliException.Usage($"unknown option {arg}.");
        }
        return parsed;
    }

    public string? Value(string name) => _values.TryGetValue(name, out var list) ? list[^1] : null;
    public IReadOnlyList<string> Values(string name) => _values.TryGetValue(name, out var list) ? list : [];
    public bool Flag(string name) => _flags.Contains(name);
}
