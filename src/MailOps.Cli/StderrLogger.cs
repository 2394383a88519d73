using System.Text.Json;
using MailOps.Core.Queue;
using Microsoft.Extensions.Logging;

namespace MailOps.Cli;

/// <summary>
/// The CLI's log: one line per event on stderr, "time mailops[event]: message", or with
/// <c>LogFormat: json</c> one JSON object per line (a mail log entry in its documented schema,
/// anything else as time, level, event and message). The level is Information unless
/// $MAILOPS_LOG says debug, warning or error.
/// </summary>
internal sealed class StderrLogger : ILogger
{
    private readonly LogLevel _minimum;
    private readonly bool _json;

    public StderrLogger(bool json = false)
    {
        _json = json;
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
        if (_json)
        {
            Console.Error.WriteLine(state is MailLogEntry entry ? entry.ToJson() : Json(logLevel, eventId, formatter(state, exception), exception));
            return;
        }
        string text = formatter(state, exception);
        if (exception is not null && logLevel >= LogLevel.Error) text += Environment.NewLine + exception;
        else if (exception is not null) text += ": " + exception.Message;
        string tag = eventId.Id == 0 ? "" : $"[{eventId.Id}]";
        Console.Error.WriteLine($"{DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss.fff} mailops{tag}: {Level(logLevel)}{text}");
    }

    public void Info(string message) => Log(LogLevel.Information, default, message, null, static (s, _) => s);
    public void Debug(string message) => Log(LogLevel.Debug, default, message, null, static (s, _) => s);
    public void Error(string message) => Log(LogLevel.Error, default, message, null, static (s, _) => s);

    private static string Json(LogLevel level, EventId eventId, string message, Exception? exception)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("time", DateTimeOffset.UtcNow);
            w.WriteString("level", level switch { LogLevel.Warning => "warning", LogLevel.Error or LogLevel.Critical => "error", LogLevel.Debug or LogLevel.Trace => "debug", _ => "info" });
            if (eventId.Name is { } name) w.WriteString("event", name);
            w.WriteString("message", message);
            if (exception is not null) w.WriteString("error", exception.Message);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Warning => "warning: ",
        LogLevel.Error or LogLevel.Critical => "error: ",
        _ => "",
    };
}
