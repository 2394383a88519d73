using System.Runtime.InteropServices;

namespace MailOps.Core.Queue;

/// <summary>
/// The few file-system calls the commit protocol needs that .NET does not offer: fsync of a
/// directory (so a rename is durable) and a write-through rename on Windows.
/// </summary>
internal static partial class DurableFile
{
    /// <summary>An open directory whose entries can be made durable with <see cref="SyncDirectory"/>.</summary>
    internal sealed class DirectoryHandle : IDisposable
    {
        private int _fd;

        public DirectoryHandle(string path)
        {
            Path = path;
            if (OperatingSystem.IsWindows()) { _fd = -1; return; }
            _fd = Native.open(path, 0 /* O_RDONLY */);
            if (_fd < 0) throw new IOException($"Cannot open directory {path}: errno {Marshal.GetLastPInvokeError()}");
        }

        public string Path { get; }

        /// <summary>fsync(2) of the directory: every create, rename and unlink in it so far is durable.</summary>
        public void Sync()
        {
            if (_fd < 0) return; // Windows: renames are write-through, NTFS journals metadata.
            if (Native.fsync(_fd) != 0)
                throw new IOException($"fsync of directory {Path} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        /// <summary>
        /// Linux syncfs(2): every file's data and metadata on this directory's file system is durable
        /// when it returns. Linux only; elsewhere the caller fsyncs file by file.
        /// </summary>
        public void SyncFileSystem()
        {
            if (Native.syncfs(_fd) != 0)
                throw new IOException($"syncfs on {Path} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        public void Dispose()
        {
            int fd = Interlocked.Exchange(ref _fd, -1);
            if (fd >= 0) Native.close(fd);
        }
    }

    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = OwnerOnlyFile | UnixFileMode.UserExecute;

    /// <summary>
    /// Opens or creates a spool file readable and writable by its owner only (0600), whatever the
    /// umask: a queue holds other people's mail (as Postfix's and qmail's do, it is private).
    /// </summary>
    public static FileStream OpenPrivate(string path, FileMode mode, FileAccess access, FileShare share, int bufferSize = 1, FileOptions options = FileOptions.None)
    {
        var fso = new FileStreamOptions { Mode = mode, Access = access, Share = share, BufferSize = bufferSize, Options = options };
        if (!OperatingSystem.IsWindows() && mode != FileMode.Open && (access & FileAccess.Write) != 0) fso.UnixCreateMode = OwnerOnlyFile;
        return new FileStream(path, fso);
    }

    /// <summary>Creates a directory that only its owner can enter (0700); an existing one we own is made so.</summary>
    /// <param name="path">The directory.</param>
    /// <param name="alsoAllowed">Bits an existing directory may keep: a system queue's root lets its maildrop group pass (0710).</param>
    public static void CreatePrivateDirectory(string path, UnixFileMode alsoAllowed = UnixFileMode.None)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }
        var info = Directory.CreateDirectory(path, OwnerOnlyDirectory);
        var allowed = OwnerOnlyDirectory | alsoAllowed;
        if ((info.UnixFileMode & ~allowed) != 0)
        {
            try { File.SetUnixFileMode(path, info.UnixFileMode & allowed); }
            catch (UnauthorizedAccessException) { } // not ours: the owner decides
        }
    }

    /// <summary>
    /// Opens a committed spool file for reading without taking its advisory lock. A body's writer
    /// keeps its lock (against the sweep) until a moment after the commit makes the message
    /// visible; a delivery started in that moment must not be refused. The bytes are complete:
    /// the commit flushed and synced them before the envelope appeared.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file is gone.</exception>
    public static FileStream OpenCommittedForReading(string path, int bufferSize)
    {
        try
        {
            // The common case: nobody holds the file. A stream opened by path knows its file and
            // reads it faster than one wrapped around a bare descriptor.
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize);
        }
        catch (IOException) when (!OperatingSystem.IsWindows() && File.Exists(path))
        {
            // Its writer still holds the lock for a moment after the commit: read it without one.
        }
        int fd = Native.open(path, 0x80000 /* O_CLOEXEC | O_RDONLY */);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 2) throw new FileNotFoundException(path, path);
            if (errno == 21) throw new UnauthorizedAccessException($"open {path} failed: it is a directory");
            throw new IOException($"open {path} failed: errno {errno}");
        }
        return new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize);
    }

    [ThreadStatic] private static byte[]? _readBuffer;

    /// <summary>
    /// Reads a small file whole with the fewest system calls (open, read, close): listing a large
    /// queue reads one envelope per message, and on a virtual machine each call costs microseconds.
    /// Only for files never written in place (envelopes are replaced by rename), where a short
    /// read is the end of the file. The span is valid until the thread's next call.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist (removed meanwhile).</exception>
    public static ReadOnlySpan<byte> ReadSmallFile(string path)
    {
        if (!OperatingSystem.IsLinux()) return File.ReadAllBytes(path);
        var buffer = _readBuffer ??= new byte[16 * 1024];
        int length = ReadUpTo(path, ref buffer, int.MaxValue - 1);
        _readBuffer = buffer;
        return buffer.AsSpan(0, length);
    }

    /// <summary>The whole file as a new array when it holds at most <paramref name="limit"/> octets (one open, its reads, one close); null when it is longer.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist (removed meanwhile).</exception>
    public static byte[]? ReadWholeFile(string path, int limit)
    {
        if (!OperatingSystem.IsLinux())
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            if (f.Length > limit) return null;
            var all = new byte[f.Length];
            f.ReadExactly(all);
            return all;
        }
        var buffer = _readBuffer ??= new byte[16 * 1024];
        int length = ReadUpTo(path, ref buffer, limit);
        _readBuffer = buffer;
        return length > limit ? null : buffer.AsSpan(0, length).ToArray();
    }

    /// <summary>Reads the file from its start into <paramref name="buffer"/> (grown as needed): its length, or limit + 1 when it is longer than <paramref name="limit"/>.</summary>
    private static int ReadUpTo(string path, ref byte[] buffer, int limit)
    {
        int fd = Native.open(path, 0x80000 /* O_CLOEXEC | O_RDONLY */);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 2) throw new FileNotFoundException(path, path);
            throw new IOException($"open {path} failed: errno {errno}");
        }
        try
        {
            int length = 0;
            while (true)
            {
                if (length > limit) return limit + 1;
                if (length == buffer.Length) buffer = GrowTo(buffer, (int)Math.Min(buffer.Length * 2L, limit + 1L), length);
                int wanted = buffer.Length - length;
                int n = ReadInto(fd, buffer.AsSpan(length));
                if (n < 0) throw new IOException($"read {path} failed: errno {Marshal.GetLastPInvokeError()}");
                length += n;
                if (n < wanted) return length; // a regular file reads short only at its end
            }
        }
        finally
        {
            Native.close(fd);
        }

        static byte[] GrowTo(byte[] old, int size, int keep)
        {
            var grown = new byte[size];
            old.AsSpan(0, keep).CopyTo(grown);
            return grown;
        }
    }

    private static unsafe int ReadInto(int fd, Span<byte> into)
    {
        fixed (byte* p = into) return (int)Native.read(fd, p, (nint)into.Length);
    }

    /// <summary>Creates an empty private file (0600) when there is none; an existing one is left as it is.</summary>
    public static void Touch(string path) => Append(path, ReadOnlySpan<byte>.Empty);

    /// <summary>
    /// <see cref="Append"/> of whole lines (<paramref name="lines"/> ends with a newline) to a file
    /// of lines: when its last line was cut short (a writer killed inside its write), a newline
    /// closes that line first, so that it does not swallow the first of these.
    /// </summary>
    public static void AppendLines(string path, ReadOnlySpan<byte> lines) => Append(path, lines, closeLastLine: true);

    /// <summary>
    /// Appends with O_APPEND in one write(2): concurrent appenders, in any process, never
    /// interleave inside a record or overwrite each other. No lock and no seek is needed.
    /// </summary>
    public static void Append(string path, ReadOnlySpan<byte> data) => Append(path, data, closeLastLine: false);

    private static unsafe void Append(string path, ReadOnlySpan<byte> data, bool closeLastLine)
    {
        if (!OperatingSystem.IsLinux())
        {
            using var f = OpenPrivate(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            f.Write(data);
            return;
        }
        int fd = Native.open(path, (closeLastLine ? 0x2 /* O_RDWR */ : 0x1 /* O_WRONLY */) | 0x40 /* O_CREAT */ | 0x400 /* O_APPEND */ | 0x80000 /* O_CLOEXEC */, 0x180 /* 0600 */);
        if (fd < 0) throw new IOException($"open {path} failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            byte last = (byte)'\n';
            long end = closeLastLine ? Native.lseek(fd, 0, 2 /* SEEK_END */) : 0;
            if (end > 0 && Native.pread(fd, &last, 1, end - 1) == 1 && last != (byte)'\n')
            {
                var closed = new byte[data.Length + 1];
                closed[0] = (byte)'\n';
                data.CopyTo(closed.AsSpan(1));
                data = closed;
            }
            while (!data.IsEmpty)
            {
                int n = WriteFrom(fd, data);
                if (n < 0) throw new IOException($"write {path} failed: errno {Marshal.GetLastPInvokeError()}");
                data = data[n..];
            }
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static unsafe int WriteFrom(int fd, ReadOnlySpan<byte> from)
    {
        fixed (byte* p = from) return (int)Native.write(fd, p, (nint)from.Length);
    }

    public static void SyncDirectory(string path)
    {
        using var dir = new DirectoryHandle(path);
        dir.Sync();
    }

    /// <summary>
    /// Makes <paramref name="link"/> a second name of the file <paramref name="existing"/> (link(2)):
    /// a marker that costs a directory entry and no new inode. Creating inodes is what is dear on
    /// a queue's file system after many deletes (ext4 without a journal: about 1 ms each for minutes,
    /// bench/inode-reuse.py, against 25 µs for a link).
    /// An existing <paramref name="link"/> is left as it is. Where there are no hard links
    /// (Windows, some file systems) the marker is an empty file.
    /// </summary>
    /// <exception cref="FileNotFoundException"><paramref name="existing"/> (or the link's directory) is gone.</exception>
    public static void Link(string existing, string link)
    {
        if (OperatingSystem.IsWindows())
        {
            if (!File.Exists(existing)) throw new FileNotFoundException($"link {existing}: no such file", existing);
            Touch(link);
            return;
        }
        if (Native.link(existing, link) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == 17 /* EEXIST */) return;
        if (errno == 2) throw new FileNotFoundException($"link {existing} -> {link}: no such file", existing);
        if (errno is 1 /* EPERM */ or 31 /* EMLINK */ or 95 /* EOPNOTSUPP */)
        {
            Touch(link); // a file system without hard links (or one that refuses this one): an empty file says the same
            return;
        }
        throw new IOException($"link {existing} -> {link} failed: errno {errno}");
    }

    /// <summary>Atomic rename within one file system; replaces the target if it exists.</summary>
    public static void Rename(string from, string to)
    {
        if (OperatingSystem.IsWindows())
        {
            if (!Native.MoveFileExW(from, to, 0x1 /* REPLACE_EXISTING */ | 0x8 /* WRITE_THROUGH */))
                throw new IOException($"rename {from} -> {to} failed: error {Marshal.GetLastPInvokeError()}");
            return;
        }
        if (Native.rename(from, to) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 2) throw new FileNotFoundException($"rename {from} -> {to}: no such file", from);
            throw new IOException($"rename {from} -> {to} failed: errno {errno}");
        }
    }

    /// <summary>
    /// Linux renameat2(2) with RENAME_NOREPLACE: moves <paramref name="from"/> to <paramref name="to"/>
    /// only when <paramref name="to"/> does not exist, atomically. 0 when done, else the errno
    /// (2: <paramref name="from"/> is gone, 17: <paramref name="to"/> exists, 22 or 38: not supported here).
    /// </summary>
    public static int RenameNoReplace(string from, string to) =>
        Native.renameat2(-100 /* AT_FDCWD */, from, -100, to, 1 /* RENAME_NOREPLACE */) == 0 ? 0 : Marshal.GetLastPInvokeError();

    private static partial class Native
    {
        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int renameat2(int fromDir, string from, int toDir, string to, uint flags);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int open(string path, int flags, int mode);

        [LibraryImport("libc", SetLastError = true)]
        internal static unsafe partial nint write(int fd, byte* buffer, nint count);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int fsync(int fd);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int close(int fd);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int syncfs(int fd);

        [LibraryImport("libc", SetLastError = true)]
        internal static unsafe partial nint read(int fd, byte* buffer, nint count);

        [LibraryImport("libc", SetLastError = true)]
        internal static unsafe partial nint pread(int fd, byte* buffer, nint count, long offset);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial long lseek(int fd, long offset, int whence);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int rename(string from, string to);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int link(string existing, string link);

        [LibraryImport("kernel32", SetLastError = true, StringMarshalling = StringMarshalling.Utf16)]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool MoveFileExW(string from, string to, uint flags);
    }
}
