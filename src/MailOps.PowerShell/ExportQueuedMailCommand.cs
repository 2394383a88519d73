using System.Management.Automation;
using MailOps.Core.Queue;

namespace MailOps.PowerShell;

/// <summary>
/// Export-QueuedMail: copies queued messages, byte for byte as stored, to .eml files
/// (<c>&lt;id&gt;.eml</c> in a directory, or one file name for one message).
/// </summary>
[Cmdlet(VerbsData.Export, "QueuedMail", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(FileInfo))]
public sealed class ExportQueuedMailCommand : QueuedMailCommand
{
    /// <summary>A directory (each message as &lt;id&gt;.eml), or a file name ending in .eml. Default: the current directory.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = ".";

    /// <summary>Overwrite existing files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        string destination = GetUnresolvedProviderPathFromPSPath(Destination);
        bool toFile = !Directory.Exists(destination) && destination.EndsWith(".eml", StringComparison.OrdinalIgnoreCase);
        ForEachMessage(QueuePath, Id, (store, id) =>
        {
            string file = toFile ? destination : Path.Combine(destination, id + ".eml");
            if (File.Exists(file) && !Force)
            {
                WriteError(new ErrorRecord(new IOException($"{file} exists; use -Force to overwrite it."), "FileExists", ErrorCategory.ResourceExists, file));
                return;
            }
            if (!ShouldProcess(file, $"Export {id}")) return;
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            using (var body = store.OpenBody(id))
            using (var output = new FileStream(file, FileMode.Create, FileAccess.Write))
                body.CopyTo(output);
            // Through the provider, as Get-Item returns it: the file system view then shows Mode and Length.
            WriteObject(InvokeProvider.Item.Get(file), enumerateCollection: true);
        });
    }
}
