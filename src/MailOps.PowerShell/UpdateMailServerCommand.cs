using System.Management.Automation;
using MailOps.Core.Config;
using MailOps.Core.Hosting;

namespace MailOps.PowerShell;

/// <summary>
/// Update-MailServer: a running server reads its configuration again (the file it started from,
/// under the parameters Start-MailServer was given) and applies it without a restart, as SIGHUP
/// does for mailops serve. An invalid configuration is refused (InvalidConfiguration) and the
/// running one stays.
/// </summary>
[Cmdlet(VerbsData.Update, "MailServer", SupportsShouldProcess = true, DefaultParameterSetName = "Server")]
[OutputType(typeof(MailServer))]
public sealed class UpdateMailServerCommand : MailServerActionCommand
{
    /// <summary>
    /// Fault rules that replace the server's Rules (as Start-MailServer -Rule takes them); @() removes
    /// them all. They hold until the next Update-MailServer.
    /// </summary>
    [Parameter]
    [ValidateNotNull]
    [AllowEmptyCollection]
    public object[]? Rule { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var server in Targets()) Reload(server);
    }

    private void Reload(MailServer server)
    {
        if (!ShouldProcess(server.ToString(), "Reload the configuration")) return;
        try
        {
            var config = ServerRegistry.LoadAgain(server);
            if (config is null)
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"Mail server {server.Id} was not started by Start-MailServer in this session (or it was stopped)."),
                    "ServerNotFound", ErrorCategory.ObjectNotFound, server));
                return;
            }
            if (Rule is not null) config.Rules = FaultRuleConversion.From(Rule);
            WriteVerbose(server.Reload(config));
            if (PassThru) WriteObject(server);
        }
        catch (ConfigException ex)
        {
            WriteError(Errors.InvalidConfiguration(ex));
        }
        catch (MailServerException ex)
        {
            WriteError(new ErrorRecord(ex, "ListenFailed", ErrorCategory.ResourceUnavailable, server));
        }
        catch (InvalidOperationException ex)
        {
            WriteError(new ErrorRecord(ex, "ServerNotRunning", ErrorCategory.InvalidOperation, server));
        }
    }
}
