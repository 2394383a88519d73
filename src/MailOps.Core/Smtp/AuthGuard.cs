using System.Net;
using System.Net.Sockets;
using MailOps.Core.Config;

namespace MailOps.Core.Smtp;

/// <summary>
/// What keeps AUTH from being a password-guessing oracle or a CPU sink (shared by every session
/// of a listener): failed attempts are counted per client (an IPv4 address, an IPv6 /64) over
/// <see cref="MailOpsConfig.AuthFailureWindow"/>; past <see cref="MailOpsConfig.AuthFailureLimit"/>
/// the client gets 421 4.7.0 at its next AUTH, right password or not, until the window has
/// passed. Password hashes (PBKDF2, tens of milliseconds each) are checked on the thread pool,
/// at most <see cref="MaxConcurrentVerifications"/> at once, so guessing clients cannot starve
/// the sessions of everyone else.
/// </summary>
internal sealed class AuthGuard
{
    private readonly MailOpsConfig _config;
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _verifications;
    private readonly Dictionary<UInt128, Queue<DateTimeOffset>> _failures = new();

    public AuthGuard(MailOpsConfig config, TimeProvider? clock = null)
    {
        _config = config;
        _clock = clock ?? TimeProvider.System;
        MaxConcurrentVerifications = Math.Max(1, Environment.ProcessorCount / 2);
        _verifications = new SemaphoreSlim(MaxConcurrentVerifications);
    }

    public int MaxConcurrentVerifications { get; }

    /// <summary>True when the client has failed too often lately and may not try again yet.</summary>
    public bool IsLockedOut(IPAddress? client)
    {
        lock (_failures) return Recent(Key(client)) >= _config.AuthFailureLimit;
    }

    /// <summary>Counts a failure; true when the client is now locked out.</summary>
    public bool RecordFailure(IPAddress? client)
    {
        lock (_failures)
        {
            var key = Key(client);
            Recent(key);
            if (!_failures.TryGetValue(key, out var times)) _failures[key] = times = new Queue<DateTimeOffset>();
            times.Enqueue(_clock.GetUtcNow());
            // Bounded: only the last AuthFailureLimit failures matter.
            while (times.Count > _config.AuthFailureLimit) times.Dequeue();
            if (_failures.Count > 100_000) Prune();
            return times.Count >= _config.AuthFailureLimit;
        }
    }

    /// <summary>The pause before a failed AUTH is answered (Postfix's smtpd_error_sleep_time).</summary>
    public TimeSpan FailureDelay => _config.AuthFailureDelay;

    /// <summary>Checks a password off the I/O path under the concurrency cap; false also when no slot came free in time.</summary>
    /// <returns>Null when the check could not run before <paramref name="cancellationToken"/> fired.</returns>
    public async Task<bool?> VerifyAsync(string password, string? storedHash, CancellationToken cancellationToken)
    {
        try
        {
            await _verifications.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        try
        {
            return await Task.Run(() =>
            {
                if (storedHash is null)
                {
                    PasswordHash.VerifyNothing(password); // the same cost, so a wrong name is not told apart
                    return false;
                }
                return PasswordHash.Verify(password, storedHash);
            }, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _verifications.Release();
        }
    }

    /// <summary>Caller holds the lock. Drops failures older than the window; returns how many remain.</summary>
    private int Recent(UInt128 key)
    {
        if (!_failures.TryGetValue(key, out var times)) return 0;
        var cutoff = _clock.GetUtcNow() - _config.AuthFailureWindow;
        while (times.Count > 0 && times.Peek() <= cutoff) times.Dequeue();
        if (times.Count == 0) _failures.Remove(key);
        return times.Count;
    }

    private void Prune()
    {
        foreach (var key in _failures.Keys.ToList()) Recent(key);
    }

    /// <summary>An IPv4 address, or the /64 of an IPv6 address (one host usually owns a whole /64).</summary>
    internal static UInt128 Key(IPAddress? client)
    {
        if (client is null) return UInt128.MaxValue;
        if (client.IsIPv4MappedToIPv6) client = client.MapToIPv4();
        Span<byte> bytes = stackalloc byte[16];
        client.TryWriteBytes(bytes, out int written);
        if (client.AddressFamily == AddressFamily.InterNetwork) return new UInt128(0, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes));
        return new UInt128(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(bytes), 1UL << 63);
    }
}
