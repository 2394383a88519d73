using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace MailOps.Core.Queue;

/// <summary>What lstat/fstat say of a file: the pickup's view of a drop it does not trust.</summary>
public readonly record struct FileFacts(bool IsRegular, bool IsSymbolicLink, uint Owner, uint Links, long Size, ulong Inode, long ModifiedNanoseconds = 0);

/// <summary>
/// The few POSIX calls .NET does not offer: file owner and link count (statx), user names
/// (getpwuid_r), the process's user ids. Linux only; callers check <see cref="OperatingSystem.IsLinux"/>.
/// </summary>
[SupportedOSPlatform("linux")]
public static partial class Posix
{
    private const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100, AtEmptyPath = 0x1000, StatxBasicStats = 0x7ff;
    private const ushort TypeMask = 0xF000, TypeRegular = 0x8000, TypeSymlink = 0xA000;

    /// <summary>lstat: the entry itself, never what a symbolic link points at. Null when it is gone.</summary>
    public static FileFacts? LStat(string path) => Statx(AtFdCwd, path, AtSymlinkNoFollow);

    /// <summary>stat: what a symbolic link points at. Null when it is gone.</summary>
    public static FileFacts? Stat(string path) => Statx(AtFdCwd, path, 0);

    /// <summary>fstat of an open file.</summary>
    public static FileFacts? FStat(SafeFileHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Statx((int)handle.DangerousGetHandle(), "", AtEmptyPath);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    private static unsafe FileFacts? Statx(int dirfd, string path, int flags)
    {
        byte* buffer = stackalloc byte[256]; // struct statx; its layout is the same on every architecture
        if (Native.statx(dirfd, path, flags, StatxBasicStats, buffer) != 0) return null;
        ushort mode = *(ushort*)(buffer + 28);
        return new FileFacts(
            IsRegular: (mode & TypeMask) == TypeRegular,
            IsSymbolicLink: (mode & TypeMask) == TypeSymlink,
            Owner: *(uint*)(buffer + 20),
            Links: *(uint*)(buffer + 16),
            Size: *(long*)(buffer + 40),
            Inode: *(ulong*)(buffer + 32),
            ModifiedNanoseconds: *(long*)(buffer + 0x70) * 1_000_000_000L + *(uint*)(buffer + 0x78));
    }

    /// <summary>
    /// The names and inode numbers of a directory's entries (readdir: no stat per entry), dot
    /// entries left out. Empty when the directory does not exist.
    /// </summary>
    public static unsafe List<(string Name, ulong Inode)> ReadDirectory(string path)
    {
        var entries = new List<(string, ulong)>();
        nint dir = Native.opendir(path);
        if (dir == 0) return entries;
        try
        {
            while (true)
            {
                byte* entry = Native.readdir64(dir);
                if (entry == null) break;
                // struct dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                byte* name = entry + 19;
                int length = 0;
                while (name[length] != 0) length++;
                if (length == 0 || (name[0] == '.' && (length == 1 || (length == 2 && name[1] == '.')))) continue;
                entries.Add((System.Text.Encoding.UTF8.GetString(name, length), *(ulong*)entry));
            }
        }
        finally
        {
            Native.closedir(dir);
        }
        return entries;
    }

    /// <summary>The login name of <paramref name="uid"/>, or null when the user database has none.</summary>
    public static unsafe string? UserName(uint uid)
    {
        byte* passwd = stackalloc byte[64]; // struct passwd; pw_name is its first member
        var buffer = new byte[16 * 1024];
        fixed (byte* b = buffer)
        {
            nint result;
            if (Native.getpwuid_r(uid, passwd, b, buffer.Length, &result) != 0 || result == 0) return null;
            return Marshal.PtrToStringUTF8(*(nint*)passwd);
        }
    }

    /// <summary>
    /// Root acting on a queue another account owns (a system queue) becomes that account first,
    /// as Postfix's postsuper does: files root made in it would be unreadable to its server.
    /// Nothing for anyone else, or for a queue root owns.
    /// </summary>
    /// <exception cref="UnauthorizedAccessException">The switch failed.</exception>
    public static unsafe void ActAsOwnerOf(string queuePath)
    {
        if (EffectiveUserId != 0 || Stat(queuePath) is not { Owner: > 0 and var uid }) return;
        byte* passwd = stackalloc byte[64];
        var buffer = new byte[16 * 1024];
        fixed (byte* b = buffer)
        {
            nint result;
            if (Native.getpwuid_r(uid, passwd, b, buffer.Length, &result) != 0 || result == 0)
                throw new UnauthorizedAccessException($"{queuePath} belongs to uid {uid}, which has no account to act as.");
            uint gid = *(uint*)(passwd + 20);
            if (Native.initgroups(*(nint*)passwd, gid) != 0 || Native.setgid(gid) != 0 || Native.setuid(uid) != 0)
                throw new UnauthorizedAccessException($"Cannot act as uid {uid}, the owner of {queuePath}: errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint EffectiveUserId => Native.geteuid();

    private static partial class Native
    {
        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        internal static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc")]
        internal static unsafe partial int getpwuid_r(uint uid, byte* passwd, byte* buffer, nint length, nint* result);

        [LibraryImport("libc")]
        internal static partial uint geteuid();

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint opendir(string path);

        [LibraryImport("libc")]
        internal static unsafe partial byte* readdir64(nint dir);

        [LibraryImport("libc")]
        internal static partial int closedir(nint dir);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int initgroups(nint user, uint group);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int setgid(uint gid);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int setuid(uint uid);
    }
}
