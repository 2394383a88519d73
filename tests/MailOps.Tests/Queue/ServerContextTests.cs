using MailOps.Core.Hosting;

namespace MailOps.Tests.Queue;

/// <summary>
/// A server must not need its caller's SynchronizationContext: started from a thread whose
/// context never runs posted work (a busy UI thread, a test runner whose threads are all taken,
/// as in the CI run where a listing test's loop held them), it still delivers.
/// </summary>
public class ServerContextTests
{
    private sealed class NeverRunsContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) { } // dropped: the thread is busy forever
    }

    [Fact]
    public void A_server_started_where_posted_work_never_runs_still_delivers()
    {
        using var q = new TempQueue();
        string maildir = Path.Combine(q.Root, "maildir");
        using (var preload = q.Open())
            for (int i = 0; i < 5; i++)
                preload.EnqueueAsync(QueueStoreTests.NewEnvelope("alice@self.test"), new MemoryStream(QueueStoreTests.SampleBody)).GetAwaiter().GetResult();

        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(new NeverRunsContext());
        MailServer server;
        try
        {
            server = MailServer.Start(LocalServer.Config(q.QueuePath, maildir, "alice@self.test"));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
        try
        {
            string box = Path.Combine(maildir, "self.test", "alice", "new");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline && (!Directory.Exists(box) || Directory.GetFiles(box).Length < 5)) Thread.Sleep(50);
            Assert.Equal(5, Directory.Exists(box) ? Directory.GetFiles(box).Length : 0);
        }
        finally
        {
            Assert.True(server.StopAsync().Wait(TimeSpan.FromSeconds(30)), "the server did not stop");
        }
    }
}
