using Microsoft.Extensions.Logging;

namespace MailOps.Core.Hosting;

/// <summary>One line of a <see cref="MemoryLog"/>.</summary>
public sealed record MailLogEntry(long Sequence, DateTimeOffset Time, string Level, int EventId, string Message);

/// <summary>
/// A bounded in-memory log. A server started from a PowerShell session runs on pool threads,
/// where nothing may write to the pipeline; it logs here, and the session reads the lines
/// (<c>Get-MailServer | % Log</c>), or a cmdlet waiting on the pipeline thread copies new
/// lines to its verbose and warning streams as they come.
/// </summary>
public sealed class MemoryLog : ILogger
{
    private readonly Queue<MailLogEntry> _lines = new();
    private readonly int _capacity;
    private long _sequence;

    // No logging type in the constructor's signature: the PowerShell module calls it, and must
    // not reference Microsoft.Extensions.Logging (it loads in the module's own context).
    public MemoryLog(int capacity = 1000)
    {
        _capacity = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity));
    }

    public LogLevel Minimum { get; init; } = LogLevel.Information;

    /// <summary>The lines kept, oldest first.</summary>
    public IReadOnlyList<MailLogEntry> Lines
    {
        get { lock (_lines) return _lines.ToArray(); }
    }

    /// <summary>Lines logged after <paramref name="cursor"/> (a sequence number); advances it.</summary>
    public IReadOnlyList<MailLogEntry> ReadNew(ref long cursor)
    {
        long from = cursor;
        lock (_lines)
        {
            var fresh = _lines.Where(l => l.Sequence > from).ToArray();
            if (fresh.Length > 0) cursor = fresh[^1].Sequence;
            return fresh;
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= Minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string text = formatter(state, exception);
        if (exception is not null) text += ": " + exception.GetBaseException().Message;
        string level = logLevel switch
        {
            LogLevel.Warning => "Warning",
            LogLevel.Error or LogLevel.Critical => "Error",
            LogLevel.Debug or LogLevel.Trace => "Debug",
            _ => "Information",
        };
        lock (_lines)
        {
            _lines.Enqueue(new MailLogEntry(++_sequence, DateTimeOffset.Now, level, eventId.Id, text));
            while (_lines.Count > _capacity) _lines.Dequeue();
        }
    }
}
