namespace MailOps.Tests.Smtp;

/// <summary>
/// A test that needs real peers from Debian's packages (swaks, postfix's smtp-source, python3).
/// .ci/run installs them and sets MAILOPS_REQUIRE_PEERS=1, so in CI a missing peer fails the test;
/// on a developer machine without them the test is skipped with a message saying what to install.
/// </summary>
public sealed class PeerFactAttribute : FactAttribute
{
    public PeerFactAttribute(params string[] programs)
    {
        var missing = programs.Where(p => Peers.Find(p) is null).ToArray();
        if (missing.Length > 0 && Environment.GetEnvironmentVariable("MAILOPS_REQUIRE_PEERS") != "1")
            Skip = $"needs {string.Join(", ", missing)} (apt-get install swaks postfix python3, or run .ci/run)";
    }
}

/// <summary>A <see cref="PeerFactAttribute"/> with data.</summary>
public sealed class PeerTheoryAttribute : TheoryAttribute
{
    public PeerTheoryAttribute(params string[] programs) => Skip = new PeerFactAttribute(programs).Skip;
}

public static class Peers
{
    public static string? Find(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            string path = Path.Combine(dir, program);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    public static string Require(string program) => Find(program) ?? throw new InvalidOperationException($"{program} is not installed");
}
