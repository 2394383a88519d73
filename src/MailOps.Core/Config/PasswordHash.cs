using System.Security.Cryptography;
using System.Text;

namespace MailOps.Core.Config;

/// <summary>
/// Salted password hashes for AUTH users (docs/configuration.md Users): PBKDF2 with HMAC-SHA256, stored as
/// <c>pbkdf2-sha256$ITERATIONS$SALT$HASH</c> (salt and hash in base64). Plain text never reaches disk.
/// </summary>
public static class PasswordHash
{
    private const string Scheme = "pbkdf2-sha256";
    public const int DefaultIterations = 100_000;
    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    public static string Create(string password, int iterations = DefaultIterations)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1000);
        byte[] salt = RandomNumberGenerator.GetBytes(SaltBytes);
        byte[] hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, HashBytes);
        return $"{Scheme}${iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    public static bool IsWellFormed(string? stored) => TryParse(stored, out _, out _, out _);

    /// <summary>Checks <paramref name="password"/> against <paramref name="stored"/> in constant time.</summary>
    public static bool Verify(string password, string? stored)
    {
        if (!TryParse(stored, out int iterations, out byte[] salt, out byte[] expected)) return false;
        byte[] actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>Spends the same time as a real check, so that an unknown user is not told apart by timing.</summary>
    public static void VerifyNothing(string password) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), new byte[SaltBytes], DefaultIterations, HashAlgorithmName.SHA256, HashBytes);

    private static bool TryParse(string? stored, out int iterations, out byte[] salt, out byte[] hash)
    {
        iterations = 0; salt = hash = [];
        var parts = (stored ?? "").Split('$');
        if (parts.Length != 4 || parts[0] != Scheme || !int.TryParse(parts[1], out iterations) || iterations < 1000 || iterations > 10_000_000)
            return false;
        try
        {
            salt = Convert.FromBase64String(parts[2]);
            hash = Convert.FromBase64String(parts[3]);
        }
        catch (FormatException)
        {
            return false;
        }
        return salt.Length >= 8 && hash.Length >= 16;
    }
}
