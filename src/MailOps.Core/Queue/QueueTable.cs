using System.Text;

namespace MailOps.Core.Queue;

/// <summary>The queue as a table for people: <c>mailops queue</c>, <c>mailq</c>, and the server's listing for other users.</summary>
public static class QueueTable
{
    public static void Write(TextWriter stdout, IReadOnlyList<QueuedMail> messages)
    {
        if (messages.Count == 0)
        {
            stdout.WriteLine("The queue is empty.");
            return;
        }
        var sb = new StringBuilder();
        sb.AppendLine($"{"Id",-16}  {"State",-8}  {"Age",6}  {"Size",8}  {"Sender",-28}  Recipients");
        foreach (var m in messages)
        {
            string recipients = m.Recipients;
            sb.Append($"{m.Id,-16}  {m.State,-8}  {FormatAge(m.Age),6}  {m.Size,8}  {Clip(m.Sender, 28),-28}  {recipients}");
            if (m.LastError is { } error) sb.Append($"  ({Clip(error, 60)})");
            sb.AppendLine();
        }
        long total = messages.Sum(m => m.Size);
        sb.AppendLine($"-- {messages.Count} message{(messages.Count == 1 ? "" : "s")}, {total} octets");
        stdout.Write(sb.ToString());
    }

    private static string FormatAge(TimeSpan age) => age.TotalSeconds switch
    {
        < 60 => $"{(int)age.TotalSeconds}s",
        < 3600 => $"{(int)age.TotalMinutes}m",
        < 86400 => $"{(int)age.TotalHours}h",
        _ => $"{(int)age.TotalDays}d",
    };

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
}
