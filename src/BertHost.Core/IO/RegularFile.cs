using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BertHost.Core.IO;

/// <summary>Why a file was not opened by <see cref="RegularFile"/>.</summary>
public sealed class NotRegularFileException(string message, bool tooLarge = false) : IOException(message)
{
    /// <summary>The file is regular but larger than the limit.</summary>
    public bool TooLarge { get; } = tooLarge;
}

/// <summary>
/// Opens files for reading only when they are regular files of a bounded size: never a FIFO (whose open blocks until a
/// writer comes), a device (<c>/dev/zero</c> never ends) or a directory. On Linux the file is opened non-blocking and
/// its type read from the open descriptor (<c>statx</c>), so nothing can be swapped in between the check and the read.
/// </summary>
public static partial class RegularFile
{
    /// <summary>Opens <paramref name="path"/> for reading; <see cref="NotRegularFileException"/> when it is not a regular file or is larger than <paramref name="maxBytes"/>.</summary>
    public static FileStream OpenRead(string path, long maxBytes = long.MaxValue)
    {
        if (!OperatingSystem.IsLinux())
        {
            // Elsewhere: the best check .NET offers before opening.
            var info = new FileInfo(path);
            if (!info.Exists || (info.Attributes & (FileAttributes.Device | FileAttributes.Directory)) != 0)
                throw new NotRegularFileException("not a regular file");
            if (info.Length > maxBytes) throw new NotRegularFileException($"{info.Length} bytes, more than {maxBytes}", tooLarge: true);
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        var fd = open(path, ORdOnly | ONonBlock | OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno == ENoEnt ? new FileNotFoundException("no such file", path) : new IOException($"cannot open the file (errno {errno})");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var (mode, size) = Stat(fd, "", AtEmptyPath);
            if ((mode & SIfMt) != SIfReg) throw new NotRegularFileException(Describe(mode));
            if (size > maxBytes) throw new NotRegularFileException($"{size} bytes, more than {maxBytes}", tooLarge: true);
            return new FileStream(handle, FileAccess.Read);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> itself (a link is not followed) is a regular file.</summary>
    public static bool IsRegular(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            var info = new FileInfo(path);
            return info.Exists && info.LinkTarget is null && (info.Attributes & (FileAttributes.Device | FileAttributes.Directory)) == 0;
        }
        try
        {
            var (mode, _) = Stat(AtFdCwd, path, AtSymlinkNoFollow);
            return (mode & SIfMt) == SIfReg;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string Describe(int mode) => (mode & SIfMt) switch
    {
        SIfDir => "a directory",
        SIfIfo => "a FIFO (named pipe)",
        SIfChr => "a character device",
        SIfBlk => "a block device",
        SIfSock => "a socket",
        SIfLnk => "a symbolic link",
        _ => "not a regular file",
    };

    // struct statx is laid out the same on every Linux architecture: stx_mode (u16) at byte 28, stx_size (u64) at 40.
    private static unsafe (int Mode, long Size) Stat(int dirfd, string path, int flags)
    {
        var buffer = stackalloc byte[256];
        if (statx(dirfd, path, flags, StatxType | StatxSize, buffer) != 0)
            throw new IOException($"cannot read the file's type (errno {Marshal.GetLastPInvokeError()})");
        return (*(ushort*)(buffer + 28), *(long*)(buffer + 40));
    }

    private const int ORdOnly = 0, ONonBlock = 0x800, OCloExec = 0x80000;
    private const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100, AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1, StatxSize = 0x200;
    private const int SIfMt = 0xF000, SIfReg = 0x8000, SIfDir = 0x4000, SIfIfo = 0x1000, SIfChr = 0x2000, SIfBlk = 0x6000, SIfSock = 0xC000, SIfLnk = 0xA000;
    private const int ENoEnt = 2;

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
