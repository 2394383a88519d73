using System.Collections;
using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Smtp;

namespace MailOps.PowerShell;

/// <summary>
/// -Rule values (hashtables or objects with Stage, Sender, Recipient, Subject, Reply, Delay, Drop,
/// Times) as the engine's fault rules. Parameters stay object[]: a Core type in a parameter would
/// be laid out before the engine's assembly can be served (see GetMailQueueCommand.State).
/// </summary>
internal static class FaultRuleConversion
{
    private static readonly string[] Keys = ["Stage", "Sender", "Recipient", "Subject", "Reply", "Delay", "Drop", "Times"];

    /// <exception cref="ConfigException">A key is unknown or a value has the wrong type.</exception>
    public static List<FaultRule> From(object[] values) => values.Select((v, i) => One(v is PSObject p ? p.BaseObject is IDictionary d ? d : p : v, i)).ToList();

    private static FaultRule One(object value, int index)
    {
        var fields = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        if (value is IDictionary table)
            foreach (DictionaryEntry e in table) fields[e.Key.ToString() ?? ""] = e.Value is PSObject p ? p.BaseObject : e.Value;
        else
            foreach (var property in PSObject.AsPSObject(value).Properties) fields[property.Name] = property.Value is PSObject p ? p.BaseObject : property.Value;
        foreach (var key in fields.Keys)
            if (!Keys.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new ConfigException($"Rule {index}: unknown key '{key}' (a rule has {string.Join(", ", Keys)}).");
        string? Text(string key) => fields.TryGetValue(key, out var v) && v is not null ? v.ToString() : null;
        try
        {
            return new FaultRule
            {
                Stage = Text("Stage") ?? "Rcpt",
                Sender = Text("Sender"),
                Recipient = Text("Recipient"),
                Subject = Text("Subject"),
                Reply = Text("Reply"),
                Delay = fields.TryGetValue("Delay", out var delay) && delay is not null ? DelayOf(delay) : TimeSpan.Zero,
                Drop = fields.TryGetValue("Drop", out var drop) && drop is not null && LanguagePrimitives.ConvertTo<bool>(drop),
                Times = fields.TryGetValue("Times", out var times) && times is not null ? LanguagePrimitives.ConvertTo<int>(times) : null,
            };
        }
        catch (PSInvalidCastException ex)
        {
            throw new ConfigException($"Rule {index}: {ex.Message}");
        }
    }

    /// <summary>A TimeSpan, a number of seconds, or a duration string ("250ms", "2s").</summary>
    private static TimeSpan DelayOf(object value) => value switch
    {
        TimeSpan t => t,
        string s => Duration.TryParse(s, out var d) ? d : throw new ConfigException($"Delay '{s}' is not a duration (250ms, 2s, 00:00:02)."),
        _ => TimeSpan.FromSeconds(LanguagePrimitives.ConvertTo<double>(value)),
    };
}
