using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MailOps.Core.Config;

/// <summary>
/// Reads a configuration file's JSON before it is bound, to report what a person needs to fix:
/// every unknown key (not only the first) with its line and the key it probably meant, and a
/// syntax error with a line and column counted from 1.
/// </summary>
internal static class ConfigKeyCheck
{
    /// <summary>Every problem found, one line each ("line 3: unknown key 'LocalDomain' (did you mean 'LocalDomains'?)"); empty when the keys are all known.</summary>
    public static List<string> UnknownKeys(ReadOnlySpan<byte> json)
    {
        var problems = new List<string>();
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var lineStarts = LineStarts(json);
        // The object types whose keys are known, innermost last; null for free-form maps and arrays of scalars.
        var stack = new Stack<Type?>();
        Type? pendingType = typeof(MailOpsConfig);
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        stack.Push(pendingType);
                        pendingType = null;
                        break;
                    case JsonTokenType.EndObject:
                        stack.Pop();
                        pendingType = null;
                        break;
                    case JsonTokenType.StartArray:
                        // An array of objects with known keys (Users): its elements are of the element type.
                        stack.Push(pendingType);
                        break;
                    case JsonTokenType.EndArray:
                        stack.Pop();
                        pendingType = null;
                        break;
                    case JsonTokenType.PropertyName:
                        var owner = stack.Count > 0 ? stack.Peek() : null;
                        pendingType = null;
                        if (owner is null) break;
                        string name = reader.GetString()!;
                        var property = Known(owner).FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
                        if (property is null)
                        {
                            string where = $"line {LineOf(lineStarts, reader.TokenStartIndex)}";
                            string? guess = Closest(name, Known(owner).Select(p => p.Name));
                            if (owner == typeof(TransportSettings) && name.ToLowerInvariant() is "password" or "user" or "username")
                            {
                                problems.Add($"{where}: '{name}': credentials never sit in the configuration; put user:password in a file only its owner can read and name it in CredentialsFile");
                                break;
                            }
                            problems.Add($"{where}: unknown key '{name}'{(owner == typeof(MailOpsConfig) ? "" : $" in {owner.Name.Replace("Settings", "")}")}" +
                                         (guess is null ? "" : $" (did you mean '{guess}'?)"));
                            break;
                        }
                        pendingType = ObjectTypeOf(property.PropertyType);
                        break;
                    default:
                        pendingType = null;
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // A syntax error: the binder reports it with its position.
        }
        return problems;
    }

    /// <summary>A syntax error as a person reads it: 1-based line and column.</summary>
    public static string Describe(JsonException ex)
    {
        string what = ex.Message;
        int cut = what.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = what.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut > 0) what = what[..cut];
        return ex.LineNumber is { } line ? $"line {line + 1}, column {(ex.BytePositionInLine ?? 0) + 1}: {what}" : what;
    }

    private static IEnumerable<PropertyInfo> Known(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.SetMethod!.IsPublic && p.GetCustomAttribute<JsonIgnoreAttribute>() is null);

    /// <summary>The settings class whose keys are checked inside this property's value (objects, or arrays of them); null for maps and scalars.</summary>
    private static Type? ObjectTypeOf(Type type)
    {
        if (type.IsArray) return ObjectTypeOf(type.GetElementType()!);
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>)) return ObjectTypeOf(type.GetGenericArguments()[0]);
        return type.IsClass && type != typeof(string) && type.Namespace == typeof(MailOpsConfig).Namespace ? type : null;
    }

    /// <summary>The known key nearest to a mistyped one (a missing plural s, a swapped letter), or null when none is close.</summary>
    internal static string? Closest(string name, IEnumerable<string> known)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var k in known)
        {
            int d = Distance(name.ToLowerInvariant(), k.ToLowerInvariant());
            if (d < bestDistance) (best, bestDistance) = (k, d);
        }
        return bestDistance <= Math.Max(2, name.Length / 4) ? best : null;
    }

    /// <summary>Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }

    private static List<long> LineStarts(ReadOnlySpan<byte> json)
    {
        var starts = new List<long> { 0 };
        for (int i = 0; i < json.Length; i++) if (json[i] == (byte)'\n') starts.Add(i + 1);
        return starts;
    }

    private static int LineOf(List<long> lineStarts, long offset)
    {
        int index = lineStarts.BinarySearch(offset);
        return (index >= 0 ? index : ~index - 1) + 1;
    }
}
