using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MailOps.Core.Queue;
using MailOps.Tests.Install;
using MailOps.Tests.Queue;

namespace MailOps.Tests.Cli;

/// <summary>Needs the published programs (tests/run-all.sh publishes them into $MAILOPS_PUBLISHED; in CI a missing one fails).</summary>
public sealed class PublishedFactAttribute : FactAttribute
{
    public PublishedFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "the published programs are built for Linux";
        else if (Environment.GetEnvironmentVariable("MAILOPS_REQUIRE_PEERS") != "1" && string.IsNullOrEmpty(SystemInstallation.Published))
            Skip = "set MAILOPS_PUBLISHED to a folder holding the published mailops and mailops-list (tests/run-all.sh does)";
    }
}

/// <summary>
/// mailops-list (src/MailOps.List): the listing of <c>mailops queue</c> compiled ahead of time,
/// which <c>mailops queue</c> becomes when it is published beside it. It must print exactly what
/// the listing in mailops prints, for every state a message can be listed in.
/// </summary>
public class ListingProgramTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    /// <summary>A queue with a message in every state, read from the index and from env/ (one envelope changed behind the index).</summary>
    private async Task FillAsync()
    {
        using var store = _q.Open();
        async Task<string> Enqueue(params string[] to) =>
            await store.EnqueueAsync(QueueStoreTests.NewEnvelope(to), new MemoryStream(QueueStoreTests.SampleBody));
        await Enqueue("queued@example.org");
        await store.HoldAsync(await Enqueue("held@example.org"));
        string released = await Enqueue("released@example.org");
        await store.HoldAsync(released);
        await store.ReleaseAsync(released); // a marker beside an envelope that still says held
        string active = await Enqueue("active@example.org");
        File.WriteAllText(Path.Combine(_q.QueuePath, "active", active), "");
        store.CompactIndex();
        await Enqueue("after-compaction@example.org", "second@example.net"); // a line appended since the snapshot

        // A deferred message written behind the index's back (a crash between rename and append).
        string deferred = await Enqueue("deferred@example.org", "other@example.net");
        var envelope = store.ReadEnvelope(deferred)!;
        envelope.Subject = "Grüße \"quoted\" <tag> ✓";
        envelope.Recipients[0].State = RecipientState.Deferred;
        envelope.Recipients[0].Attempts = 3;
        envelope.Recipients[0].LastError = "451 4.3.0 try later";
        envelope.Recipients[0].NextAttempt = DateTimeOffset.UtcNow.AddMinutes(20);
        envelope.Recipients[0].Updated = DateTimeOffset.UtcNow;
        envelope.Recipients[1].State = RecipientState.Delivered;
        string tmp = Path.Combine(_q.QueuePath, "tmp", "x");
        File.WriteAllBytes(tmp, QueueJson.Serialize(envelope));
        File.Move(tmp, Path.Combine(_q.QueuePath, "env", deferred), overwrite: true);
    }

    /// <summary>What the listing in this process prints.</summary>
    private string InProcess(MessageState? state, bool json)
    {
        using var store = _q.Open();
        var messages = store.Stream(new QueueFilter { State = state });
        if (!json)
        {
            var table = new StringWriter();
            QueueTable.Write(table, messages.ToList());
            return table.ToString();
        }
        var output = new MemoryStream();
        QueueListing.WriteJson(output, messages);
        return Encoding.UTF8.GetString(output.ToArray());
    }

    /// <summary>A listing without what the clock changes between two runs (ages), so two listings compare whole.</summary>
    private static string Timeless(string listing, bool json)
    {
        if (!json) return string.Join("\n", listing.Split('\n').Select(l => l.Length > 34 && QueueId.IsValid(l[..16]) ? l[..28] + l[34..] : l));
        var array = JsonNode.Parse(listing)!.AsArray();
        foreach (var m in array) m!.AsObject().Remove("ageSeconds");
        return array.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private async Task AssertListsAsInProcess(string program, params string[] before)
    {
        foreach (var (state, json) in new (MessageState?, bool)[] { (null, true), (null, false), (MessageState.Held, true), (MessageState.Deferred, false), (MessageState.Active, true) })
        {
            var args = new List<string>(before) { "--queue", _q.QueuePath };
            if (state is { } s) args.AddRange(["--state", s.ToString().ToLowerInvariant()]);
            if (json) args.Add("--json");
            var run = await Programs.RunAsync(program, args);
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Equal(Timeless(InProcess(state, json), json), Timeless(run.Stdout, json));
        }
    }

    [Fact]
    public async Task The_listing_program_prints_what_mailops_prints_for_every_state()
    {
        await FillAsync();
        var all = JsonNode.Parse(InProcess(null, json: true))!.AsArray();
        Assert.Equal(["Active", "Deferred", "Held", "Queued"], all.Select(m => (string)m!["state"]!).Distinct().Order());
        Assert.Equal(6, all.Count);
        await AssertListsAsInProcess(Programs.ListProgram);

        var missing = await Programs.RunAsync(Programs.ListProgram, ["--queue", Path.Combine(_q.Root, "none")]);
        Assert.Equal(64, missing.ExitCode);
        Assert.Contains("there is no queue at", missing.Stderr);
        Assert.Equal(64, (await Programs.RunAsync(Programs.ListProgram, ["--queue", _q.QueuePath, "--state", "lost"])).ExitCode);
        Assert.Equal(64, (await Programs.RunAsync(Programs.ListProgram, ["--json"])).ExitCode);
    }

    [Fact]
    public async Task Mailops_queue_becomes_the_listing_program_beside_it_and_lists_by_itself_without_it()
    {
        if (!OperatingSystem.IsLinux()) return;
        await FillAsync();
        // A copy of the built mailops with a stand-in for mailops-list that says how it was run.
        string bin = Path.Combine(_q.Root, "bin");
        Directory.CreateDirectory(bin);
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(Programs.Mailops)!))
            File.Copy(file, Path.Combine(bin, Path.GetFileName(file)));
        string mailops = Path.Combine(bin, Path.GetFileName(Programs.Mailops));
        string standIn = Path.Combine(bin, "mailops-list");
        File.WriteAllText(standIn, "#!/bin/sh\necho \"pid $$ args $*\"\nexit 3\n");
        File.SetUnixFileMode(standIn, (UnixFileMode)0x1ed);

        var run = await Programs.RunAsync(mailops, ["queue", "--json", "--state", "held", "--queue", _q.QueuePath]);
        Assert.Equal(3, run.ExitCode); // its exit code is mailops's: the same process
        Assert.Equal($"args --queue {_q.QueuePath} --state Held --json", run.Stdout.Trim()[(run.Stdout.IndexOf("args", StringComparison.Ordinal))..]);
        Assert.Contains("args --queue", (await Programs.RunAsync(mailops, ["queue", "--queue", _q.QueuePath])).Stdout);
        // Not for what only mailops does (--shape), nor for a queue that is not there.
        Assert.Contains("example.org", (await Programs.RunAsync(mailops, ["queue", "--shape", "--queue", _q.QueuePath])).Stdout);
        Assert.Equal(64, (await Programs.RunAsync(mailops, ["queue", "--queue", Path.Combine(_q.Root, "none")])).ExitCode);

        File.Delete(standIn);
        await AssertListsAsInProcess(mailops, "queue");
    }

    [PublishedFact]
    public async Task The_published_mailops_queue_lists_through_the_program_compiled_ahead_of_time()
    {
        string published = SystemInstallation.Published!;
        string program = Path.Combine(published, "mailops-list");
        Assert.True(File.Exists(program), $"{program} is not published (tests/run-all.sh publishes it)");
        Assert.False(File.Exists(Path.Combine(published, "mailops-list.dll")), "mailops-list is published as a native program, not IL");
        await FillAsync();
        await AssertListsAsInProcess(program);
        await AssertListsAsInProcess(Path.Combine(published, "mailops"), "queue");
    }
}
