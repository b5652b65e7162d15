// MSBuild inline task (see Directory.Build.targets). Marks one GNU version requirement (e.g. GLIBCXX_3.4.32) of an
// ELF64 little-endian shared library as VER_FLG_WEAK, so the dynamic loader no longer refuses the library when the
// system libstdc++ lacks that version. A 2-byte in-place edit; running it again changes nothing.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenGlibcxxRequirement : Task
{
    [Required] public ITaskItem[] Files { get; set; }
    [Required] public string Version { get; set; }

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            try
            {
                byte[] b = File.ReadAllBytes(path);
                int changed = Weaken(b, Version);
                if (changed > 0)
                {
                    File.WriteAllBytes(path, b);
                    Log.LogMessage(MessageImportance.Normal, $"Marked {Version} weak in {path}");
                }
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not patch {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    private static int Weaken(byte[] b, string version)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[4] != 2 || b[5] != 1) return 0; // ELF64 LE only
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(b, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(b, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(b, (int)sh + 0x28);
            long strtab = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
            return WalkVerneed(b, offset, strtab, version);
        }
        return 0;
    }

    private static int WalkVerneed(byte[] b, long off, long strtab, string version)
    {
        int changed = 0;
        while (true)
        {
            int cnt = BitConverter.ToUInt16(b, (int)off + 2);
            long aux = off + BitConverter.ToUInt32(b, (int)off + 8);
            uint next = BitConverter.ToUInt32(b, (int)off + 12);
            for (int j = 0; j < cnt; j++)
            {
                ushort flags = BitConverter.ToUInt16(b, (int)aux + 4);
                uint name = BitConverter.ToUInt32(b, (int)aux + 8);
                if (CString(b, strtab + name) == version && (flags & VerFlgWeak) == 0)
                {
                    flags |= VerFlgWeak;
                    b[aux + 4] = (byte)(flags & 0xff);
                    b[aux + 5] = (byte)(flags >> 8);
                    changed++;
                }
                aux += BitConverter.ToUInt32(b, (int)aux + 12);
            }
            if (next == 0) return changed;
            off += next;
        }
    }

    private static string CString(byte[] b, long start)
    {
        long end = start;
        while (b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)start, (int)(end - start));
    }
}
