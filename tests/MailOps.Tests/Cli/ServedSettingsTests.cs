using MailOps.Core.Config;
using MailOps.Core.Hosting;
using MailOps.Core.Queue;

namespace MailOps.Tests.Cli;

/// <summary>Command-line settings reach the configuration one way, and submitters see the running server's own settings.</summary>
public sealed class ServedSettingsTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    [Fact]
    public void Overrides_replace_only_what_they_set()
    {
        var config = new MailOpsConfig { HostName = "file.test", LocalDomains = ["file.test"], MaxRecipients = 7, ConcurrencyPerDomainMax = 3 };
        new ConfigOverrides
        {
            HostName = "mx.cli.test",
            Mailboxes = ["a@cli.test"],
            Aliases = new Dictionary<string, IReadOnlyList<string>> { ["team@cli.test"] = ["a@cli.test", "b@far.test"] },
            ConcurrencyPerDomain = 8,
            TlsEnabled = false,
        }.ApplyTo(config);
        Assert.Equal("mx.cli.test", config.HostName);
        Assert.Equal(["file.test"], config.LocalDomains); // not given: the file's value stays
        Assert.Equal(7, config.MaxRecipients);
        Assert.Equal(["a@cli.test"], config.Mailboxes);
        Assert.Equal(["a@cli.test", "b@far.test"], config.Aliases["TEAM@cli.test"]);
        Assert.Equal(8, config.ConcurrencyPerDomainMax); // raised with the window
        Assert.False(config.Tls.Enabled);
        config.Validate();
    }

    [Fact]
    public async Task A_submission_to_a_served_queue_uses_the_servers_own_HostName()
    {
        // The HostName comes from the server's command line, not from a configuration file.
        await using (var server = MailServer.Start(new MailOpsConfig
        {
            HostName = "mx.served.test",
            QueuePath = _q.QueuePath,
            Listen = ["127.0.0.1:0"],
            Tls = new TlsSettings { Enabled = false },
        }, new MailServerOptions { Delivery = false }))
        {
            var submit = await Programs.MailopsAsync("Subject: served\n\nbody\n", "submit", "--queue", _q.QueuePath, "-f", "a@served.test", "b@far.test");
            Assert.True(submit.ExitCode == 0, submit.ToString());
            using var store = _q.Open();
            using var reader = new StreamReader(store.OpenBody(submit.Stdout.Trim()));
            Assert.StartsWith("Received: by mx.served.test (MailOps", await reader.ReadToEndAsync());
        }
        // Stopped: the settings are gone, and a stale file would not be believed without the server lock.
        Assert.False(File.Exists(ServedSettings.PathOf(_q.QueuePath)));
        Assert.False(QueueStore.IsServedAt(_q.QueuePath));
    }
}
