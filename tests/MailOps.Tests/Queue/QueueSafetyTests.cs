using MailOps.Core.Config;
using MailOps.Core.Queue;

namespace MailOps.Tests.Queue;

/// <summary>The spool stays private, a sweep never strands a message, a closed store fails cleanly, a committed body is free at once.</summary>
public sealed class QueueSafetyTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDir = Private | UnixFileMode.UserExecute;

    [Fact]
    public async Task The_spool_is_private_whatever_the_umask()
    {
        if (OperatingSystem.IsWindows()) return; // ACLs, not modes
        using var store = _q.Open();
        string id = await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody));
        await store.HoldAsync(id); // an envelope rewritten in place
        using (store.TryAcquireServerLock()) { }

        Assert.Equal(PrivateDir, File.GetUnixFileMode(_q.QueuePath));
        foreach (var dir in new[] { "mess", "env", "tmp", "active", "released", "log", "index", "lock", "control" })
            Assert.True(PrivateDir == File.GetUnixFileMode(Path.Combine(_q.QueuePath, dir)), $"{dir}/ is {File.GetUnixFileMode(Path.Combine(_q.QueuePath, dir))}");
        string log = Path.GetRelativePath(_q.QueuePath, Directory.GetFiles(Path.Combine(_q.QueuePath, "log")).Single());
        foreach (var file in new[] { $"mess/{id}", $"env/{id}", log, "index/envelopes", "lock/server" })
            Assert.True(Private == File.GetUnixFileMode(Path.Combine(_q.QueuePath, file)), $"{file} is {File.GetUnixFileMode(Path.Combine(_q.QueuePath, file))}");
    }

    [Fact]
    public void An_existing_queue_made_readable_is_made_private_again_when_opened()
    {
        if (OperatingSystem.IsWindows()) return;
        using (_q.Open()) { }
        File.SetUnixFileMode(Path.Combine(_q.QueuePath, "env"), PrivateDir | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        using (_q.Open()) { }
        Assert.Equal(PrivateDir, File.GetUnixFileMode(Path.Combine(_q.QueuePath, "env")));
    }

    [Fact]
    public void A_configuration_holding_secrets_that_others_can_read_is_warned_about()
    {
        if (OperatingSystem.IsWindows()) return;
        string path = Path.Combine(_q.Root, "config.json");
        File.WriteAllText(path, $$"""{ "Users": [ { "Name": "u", "PasswordHash": "{{PasswordHash.Create("x", iterations: 1000)}}" } ] }""");
        File.SetUnixFileMode(path, Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var warning = MailOpsConfig.Load(path, required: true).SecretExposureWarning();
        Assert.NotNull(warning);
        Assert.Contains("chmod 600", warning);
        File.SetUnixFileMode(path, Private);
        Assert.Null(MailOpsConfig.Load(path, required: true).SecretExposureWarning());
        // No secrets, no warning, whatever the mode.
        File.WriteAllText(path, """{ "HostName": "mx.test" }""");
        File.SetUnixFileMode(path, Private | UnixFileMode.OtherRead);
        Assert.Null(MailOpsConfig.Load(path, required: true).SecretExposureWarning());
    }

    [Fact]
    public async Task A_committed_body_can_be_opened_for_delivery_before_its_writer_is_disposed()
    {
        // The trigger is pulled by the commit: the delivery it starts must not find the body locked.
        using var store = _q.Open();
        await using var message = store.CreateMessage();
        await message.Body.WriteAsync(QueueStoreTests.SampleBody);
        string id = await message.CommitAsync(QueueStoreTests.NewEnvelope("bob@example.org"));
        await using var body = store.OpenBodyForDelivery(id);
        Assert.NotNull(body);
        Assert.Equal(QueueStoreTests.SampleBody.Length, body!.Length);
    }

    [Fact]
    public async Task A_sweep_decides_about_a_leftover_while_it_holds_the_leftovers_lock()
    {
        using var store = _q.Open();
        // A body file nobody holds (a writer that has just created it and not yet locked it looks the same).
        string id = QueueId.New();
        string body = Path.Combine(_q.QueuePath, "mess", id);
        File.WriteAllText(body, "a body");
        bool writerLocked = false;
        QueueStore.SweepHook = path =>
        {
            if (path != body) return;
            // The writer takes its lock now, between the sweep's check and its unlink.
            try
            {
                using var writer = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None);
                writerLocked = true;
            }
            catch (IOException) { }
        };
        try
        {
            store.Sweep(asServer: false);
        }
        finally
        {
            QueueStore.SweepHook = null;
        }
        // Either the writer could not lock the file (it retries with a new id), or the file it
        // locked is still there: never a locked body that the sweep then unlinks.
        Assert.False(writerLocked && !File.Exists(body), "the sweep unlinked a body its writer had locked");
        Assert.False(writerLocked);
        Assert.False(File.Exists(body));
    }

    [Fact]
    public async Task A_commit_after_the_store_is_closed_is_a_transient_queue_failure()
    {
        var store = _q.Open();
        await store.EnqueueAsync(QueueStoreTests.NewEnvelope("bob@example.org"), new MemoryStream(QueueStoreTests.SampleBody)); // starts the committer
        await using var late = store.CreateMessage();
        await late.Body.WriteAsync(QueueStoreTests.SampleBody);
        store.Dispose();
        var ex = await Assert.ThrowsAsync<QueueFailureException>(() => late.CommitAsync(QueueStoreTests.NewEnvelope("bob@example.org")));
        Assert.True(ex.IsTransient);
        await late.DisposeAsync();
        Assert.Single(_q.Files("env"));
        Assert.Single(_q.Files("mess"));
        Assert.Empty(_q.Files("tmp"));
    }
}
