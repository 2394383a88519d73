using MailOps.Cli;
using MailOps.Core.Addressing;
using MailOps.Core.Config;
using MailOps.Core.Queue;
using MailOps.Core.Submission;

namespace MailOps.Tests;

public class QueueIdTests
{
    [Fact]
    public void Ids_are_unique_valid_sortable_and_carry_their_arrival_time()
    {
        var before = DateTimeOffset.UtcNow;
        var ids = Enumerable.Range(0, 10_000).Select(_ => QueueId.New()).ToList();
        var after = DateTimeOffset.UtcNow;
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
        Assert.All(ids, id => Assert.True(QueueId.IsValid(id)));
        Assert.All(ids, id => Assert.Matches("^[0-9a-z]{16}$", id));
        Assert.InRange(QueueId.ArrivalOf(ids[0]), before.AddMilliseconds(-1), after.AddSeconds(1));

        // A clock that stands still (or steps back) still gives strictly increasing ids.
        var past = before.AddHours(-1);
        var same = Enumerable.Range(0, 100).Select(_ => QueueId.New(past)).ToList();
        Assert.Equal(same, same.Order(StringComparer.Ordinal));
        Assert.True(string.CompareOrdinal(same[0], ids[^1]) > 0);
    }

    [Fact]
    public void Sort_keys_order_ids_as_ordinal_strings_do()
    {
        const string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
        var random = new Random(17);
        var ids = Enumerable.Range(0, 5_000)
            .Select(i => new string(Enumerable.Range(0, 16).Select(_ => alphabet[random.Next(i % 3 == 0 ? 2 : alphabet.Length)]).ToArray()))
            .Concat(["0000000000000000", "zzzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzy", "1000000000000000", "0zzzzzzzzzzzzzzz"])
            .ToList();
        UInt128 Key(string id) => QueueId.TryGetSortKey(id, out var key) ? key : throw new InvalidOperationException(id);
        Assert.Equal(ids.Order(StringComparer.Ordinal), ids.OrderBy(Key));
        Assert.Equal(ids.Distinct().Count(), ids.Select(Key).Distinct().Count());
        Assert.False(QueueId.TryGetSortKey("1k0vjtner8qwjdi0", out _));
        Assert.False(QueueId.TryGetSortKey("1k0vjtner8qwjd\u00e90", out _));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("../../etc/passwd")]
    [InlineData("1k0vjtner8qwjd\u00e90")]
    [InlineData("1K0VJTNER8QWJD82")]
    [InlineData("1k0vjtner8qwjd8")]
    [InlineData("1k0vjtner8qwjdil")]
    public void Invalid_ids_are_rejected(string? id) => Assert.False(QueueId.IsValid(id));
}

public class EnvelopeAddressTests
{
    [Theory]
    [InlineData("user@example.org", "user", "example.org")]
    [InlineData("User.Name+tag@Example.ORG", "User.Name+tag", "example.org")]
    [InlineData("\"john doe\"@example.org", "\"john doe\"", "example.org")]
    [InlineData("x@[192.0.2.1]", "x", "[192.0.2.1]")]
    [InlineData("x@[IPv6:2001:db8::1]", "x", "[IPv6:2001:db8::1]")]
    [InlineData("josé@exämple.org", "josé", "exämple.org")]
    public void Valid_mailboxes(string text, string local, string domain)
    {
        Assert.True(EnvelopeAddress.TryParse(text, allowUtf8: true, out var a, out var error), error);
        Assert.Equal(local, a!.LocalPart);
        Assert.Equal(domain, a.Domain);
    }

    [Theory]
    [InlineData("user")]
    [InlineData("@example.org")]
    [InlineData("user@")]
    [InlineData(".user@example.org")]
    [InlineData("us..er@example.org")]
    [InlineData("us er@example.org")]
    [InlineData("user@exa_mple.org")]
    [InlineData("user@-example.org")]
    [InlineData("user@[300.1.1.1]")]
    [InlineData("user@example.org\r\nRCPT TO:<x@y>")]
    public void Invalid_mailboxes(string text) => Assert.False(EnvelopeAddress.TryParse(text, allowUtf8: true, out _, out _));

    [Fact]
    public void Limits_of_rfc5321_are_enforced()
    {
        Assert.False(EnvelopeAddress.TryParse(new string('a', 65) + "@example.org", false, out _, out var e1));
        Assert.Contains("64", e1);
        Assert.False(EnvelopeAddress.TryParse("a@" + string.Join('.', Enumerable.Repeat(new string('b', 60), 5)), false, out _, out _));
        Assert.False(EnvelopeAddress.TryParse("josé@example.org", allowUtf8: false, out _, out _));
    }

    [Fact]
    public void Completion_of_bare_names_and_plus_domain()
    {
        Assert.True(EnvelopeAddress.TryParseCompleting("root", "example.com", null, out var a, out _));
        Assert.Equal("root@example.com", a!.ToString());
        Assert.True(EnvelopeAddress.TryParseCompleting("<bob@host+>", "example.com", "example.com", out a, out _));
        Assert.Equal("bob@host.example.com", a!.ToString());
    }
}

public class ConfigTests : IDisposable
{
    private readonly TempQueue _q = new();
    public void Dispose() => _q.Dispose();

    [Fact]
    public void Defaults_follow_the_spec()
    {
        var c = new MailOpsConfig();
        Assert.Equal(["localhost"], c.LocalDomains);
        Assert.Equal(["127.0.0.1:2525"], c.Listen);
        Assert.Equal(["127.0.0.0/8", "::1/128"], c.RelayClients);
        Assert.Equal(TimeSpan.FromDays(5), c.QueueLifetime);
        Assert.Equal(35L * 1024 * 1024, c.MaxMessageSize);
        Assert.Equal(100, c.MaxRecipients);
        Assert.Equal((20, 5, 10), (c.ConcurrencyRemote, c.ConcurrencyPerDomain, c.ConcurrencyLocal));
        Assert.True(c.Tls.Enabled);
        Assert.Equal(c.HostName, c.EffectiveDefaultDomain);
    }

    [Fact]
    public void A_file_sets_keys_case_insensitively_with_durations_and_comments()
    {
        string path = Path.Combine(_q.Root, "config.json");
        File.WriteAllText(path, """
            { // comments are fine
              "hostname": "mx.example.com",
              "LocalDomains": ["example.com"],
              "QueueLifetime": "2d",
              "JournalRetention": "36h",
              "Aliases": { "postmaster@example.com": ["alice@example.com"] },
            }
            """);
        var c = MailOpsConfig.Load(path, required: true);
        Assert.Equal("mx.example.com", c.HostName);
        Assert.Equal(["example.com"], c.LocalDomains);
        Assert.Equal(TimeSpan.FromDays(2), c.QueueLifetime);
        Assert.Equal(TimeSpan.FromHours(36), c.JournalRetention);
        Assert.Equal(["alice@example.com"], c.Aliases["POSTMASTER@example.com"]);
    }

    [Theory]
    [InlineData("{ \"HostNmae\": \"typo\" }", "HostNmae")]
    [InlineData("{ \"RemotePort\": 0 }", "RemotePort")]
    [InlineData("{ \"QueueLifetime\": \"soon\" }", "soon")]
    [InlineData("not json", "")]
    public void Bad_files_are_reported_with_the_reason(string json, string mention)
    {
        string path = Path.Combine(_q.Root, "bad.json");
        File.WriteAllText(path, json);
        var ex = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(path, required: true));
        Assert.Contains(mention, ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Every_unknown_key_is_reported_with_its_line_and_the_key_it_was_meant_to_be()
    {
        string path = Path.Combine(_q.Root, "typos.json");
        File.WriteAllText(path, "{\n  \"HostName\": \"mx.test\",\n  \"LocalDomain\": [\"a.test\"],\n  \"Tls\": { \"Enabeld\": false },\n  \"Users\": [ { \"Nmae\": \"u\" } ],\n  \"Aliases\": { \"anything@a.test\": [\"b@a.test\"] },\n  \"Frobnicate\": 1\n}\n");
        var ex = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(path, required: true));
        Assert.Contains("line 3: unknown key 'LocalDomain' (did you mean 'LocalDomains'?)", ex.Message);
        Assert.Contains("line 4: unknown key 'Enabeld' in Tls (did you mean 'Enabled'?)", ex.Message);
        Assert.Contains("line 5: unknown key 'Nmae' in User (did you mean 'Name'?)", ex.Message);
        Assert.Contains("line 7: unknown key 'Frobnicate'", ex.Message);
        Assert.DoesNotContain("anything@a.test", ex.Message); // map keys are free
    }

    [Fact]
    public void A_syntax_error_is_reported_with_a_line_and_column_counted_from_one()
    {
        string path = Path.Combine(_q.Root, "broken.json");
        File.WriteAllText(path, "{\n  \"HostName\": \"mx.test\"\n  \"RemotePort\": 25\n}\n");
        var ex = Assert.Throws<ConfigException>(() => MailOpsConfig.Load(path, required: true));
        Assert.Contains("line 3, column 3", ex.Message);
        Assert.DoesNotContain("LineNumber", ex.Message);
    }

    [Fact]
    public void A_missing_file_is_an_error_only_when_named()
    {
        string path = Path.Combine(_q.Root, "none.json");
        Assert.Throws<ConfigException>(() => MailOpsConfig.Load(path, required: true));
        Assert.NotNull(MailOpsConfig.Load(path, required: false));
    }

    [Fact]
    public void Queue_path_resolution_order()
    {
        string? saved = Environment.GetEnvironmentVariable(QueueLocation.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(QueueLocation.EnvironmentVariable, "/tmp/from-env");
            Assert.Equal("/tmp/explicit", QueueLocation.Resolve("/tmp/explicit", "/tmp/config"));
            Assert.Equal("/tmp/from-env", QueueLocation.Resolve(null, "/tmp/config"));
            Environment.SetEnvironmentVariable(QueueLocation.EnvironmentVariable, null);
            Assert.Equal("/tmp/config", QueueLocation.Resolve(null, "/tmp/config"));
            Assert.Equal(QueueLocation.DefaultQueuePath, QueueLocation.Resolve(null));
            Assert.EndsWith(Path.Combine("mailops", "queue"), QueueLocation.DefaultQueuePath);
        }
        finally
        {
            Environment.SetEnvironmentVariable(QueueLocation.EnvironmentVariable, saved);
        }
    }
}

public class SendmailArgsTests
{
    [Fact]
    public void Php_mail_command_line()
    {
        var a = SendmailArgs.Parse(["-t", "-i"]);
        Assert.True(a.ExtractRecipients);
        Assert.True(a.IgnoreDots);
        Assert.Empty(a.Recipients);
    }

    [Fact]
    public void Cron_command_line()
    {
        var a = SendmailArgs.Parse(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]);
        Assert.Equal("CronDaemon", a.FullName);
        Assert.True(a.IgnoreDots);
        Assert.Equal(["root"], a.Recipients);
    }

    [Fact]
    public void Values_attached_or_separate_and_recipient_lists()
    {
        var a = SendmailArgs.Parse(["-f", "a@x.example", "-oi", "-F", "Alice", "--", "b@y.example,c@z.example", "d@w.example"]);
        Assert.Equal("a@x.example", a.Sender);
        Assert.Equal("Alice", a.FullName);
        Assert.True(a.IgnoreDots);
        Assert.Equal(["b@y.example", "c@z.example", "d@w.example"], a.Recipients);
        Assert.Equal("s@x.example", SendmailArgs.Parse(["-rs@x.example", "r"]).Sender);
        Assert.True(SendmailArgs.Parse(["-bp"]).ListQueue);
    }

    [Theory]
    [InlineData("-bs")]
    [InlineData("-X")]
    [InlineData("-tx")]
    [InlineData("-f")]
    public void Unsupported_options_are_usage_errors(string option)
    {
        Assert.Throws<SendmailUsageException>(() => SendmailArgs.Parse([option]));
    }
}
