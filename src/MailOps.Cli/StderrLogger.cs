using Microsoft.Extensions.Logging;

namespace MailOps.Cli;

/// <summary>
/// The CLI's log: one line per event on stderr, "time mailops[event]: message". The level is
/// Information unless $MAILOPS_LOG says debug, warning or error.
/// </summary>
internal sealed class StderrLogger : ILogger
{
    private readonly LogLevel _minimum;

    public StderrLogger()
    {
        _minimum = Environment.GetEnvironmentVariable("MAILOPS_LOG")?.ToLowerInvariant() switch
        {
            "debug" or "trace" => LogLevel.Debug,
            "warning" => LogLevel.Warning,
            "error" => LogLevel.Error,
            _ => LogLevel.Information,
        };
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= _minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string text = formatter(state, exception);
        if (exception is not null && logLevel >= LogLevel.Error) text += Environment.NewLine + exception;
        else if (exception is not null) text += ": " + exception.Message;
        string tag = eventId.Id == 0 ? "" : $"[{eventId.Id}]";
        Console.Error.WriteLine($"{DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss.fff} mailops{tag}: {Level(logLevel)}{text}");
    }

    public void Info(string message) => Log(LogLevel.Information, default, message, null, static (s, _) => s);
    public void Debug(string message) => Log(LogLevel.Debug, default, message, null, static (s, _) => s);

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Warning => "warning: ",
        LogLevel.Error or LogLevel.Critical => "error: ",
        _ => "",
    };
}
