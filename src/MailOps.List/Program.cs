using MailOps.Core.Queue;

namespace MailOps.List;

/// <summary>
/// <c>mailops-list --queue DIR [--state S] [--json]</c>: what <c>mailops queue</c> prints, from a
/// program compiled ahead of time. <c>mailops queue</c> runs it in its own place (exec) once the
/// queue path is settled and root has become the queue's owner; it is not meant to be run by hand,
/// but does the same when it is. Exit codes are mailops's: 0, 64 usage, 75 a file-system failure.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string? queue = null;
        MessageState? state = null;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--queue" when i + 1 < args.Length:
                    queue = args[++i];
                    break;
                case "--state" when i + 1 < args.Length && Enum.TryParse<MessageState>(args[i + 1], ignoreCase: true, out var s) && Enum.IsDefined(s):
                    state = s;
                    i++;
                    break;
                case "--json":
                    json = true;
                    break;
                default:
                    return Fail(64, $"usage: mailops-list --queue DIR [--state {string.Join("|", Enum.GetNames<MessageState>())}] [--json] ('{args[i]}' is not understood).");
            }
        }
        if (queue is null) return Fail(64, "usage: mailops-list --queue DIR [--state S] [--json]");
        try
        {
            if (!QueueStore.Exists(queue)) return Fail(64, $"there is no queue at {queue}.");
            using var store = QueueStore.Open(queue);
            QueueListing.Print(store, state, json, Console.Out);
            Console.Out.Flush();
            return 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or QueueFailureException)
        {
            return Fail(75, ex.Message);
        }
    }

    private static int Fail(int code, string message)
    {
        Console.Error.WriteLine($"mailops: {message}");
        return code;
    }
}
