using System.IO.Compression;
using System.Text;
using BertHost.Core.Checkpoints;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

public class RestrictedUnpicklerTests
{
    private static string ZipWithPickle(TempFolder tmp, byte[] pickle, string name = "hand.pt")
    {
        var path = tmp.File(name);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var s = zip.CreateEntry("hand/data.pkl").Open()) s.Write(pickle);
        using (var s = zip.CreateEntry("hand/data/0").Open()) s.Write(new byte[16]);
        return path;
    }

    private static byte[] P(params object[] parts)
    {
        var ms = new MemoryStream();
        foreach (var p in parts)
        {
            switch (p)
            {
                case string s: ms.Write(Encoding.Latin1.GetBytes(s)); break;
                case byte b: ms.WriteByte(b); break;
                case int i: ms.WriteByte((byte)i); break;
                case byte[] a: ms.Write(a); break;
            }
        }
        return ms.ToArray();
    }

    private static byte[] Uni(string s) => P((byte)'X', BitConverter.GetBytes(s.Length), s);

    [Theory]
    [InlineData(0x81, "NEWOBJ")]
    [InlineData((int)'I', "INT")]
    [InlineData((int)'B', "BINBYTES")]
    [InlineData(0x01, "unknown")]
    public void Unsupported_opcodes_are_named(int opcode, string name)
    {
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, P(0x80, 2, opcode, "."));
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains(name, ex.Message);
        Assert.Contains($"0x{opcode:x2}", ex.Message);
        Assert.Contains("hand.pt", ex.Message);
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("torch", "load")]
    [InlineData("torch._utils", "_rebuild_qtensor")]
    [InlineData("collections", "defaultdict")]
    public void Globals_outside_the_allow_list_are_refused(string module, string name)
    {
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, P(0x80, 2, "c", module, "\n", name, "\n", ")", "R", "."));
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains($"'{module}.{name}'", ex.Message);
        Assert.Contains("refusing", ex.Message);
    }

    [Fact]
    public void Stack_global_and_memoize_and_long_forms_work()
    {
        // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4), 0, (2, 2), (2, 1), False, OrderedDict())}
        // written with protocol-4 style opcodes: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, LONG_BINPUT/GET, BININT, LONG1, BININT2.
        static byte[] Short(string s) => P(0x8c, s.Length, s);
        var pickle = P(
            0x80, 4, 0x95, new byte[8],
            "}", 0x94,                                                          // memo 0: the dict
            Short("w"), 0x94,
            Short("torch._utils"), Short("_rebuild_tensor_v2"), 0x93, 0x94,
            "(",
              "(", Short("storage"), Short("torch"), Short("FloatStorage"), 0x93, Short("0"), Short("cpu"), "J", BitConverter.GetBytes(4), "t",
              "Q",
              0x8a, 1, 0,                                                       // LONG1 0: storage offset
              "M", BitConverter.GetBytes((ushort)2), "K", 2, 0x86,              // size (2, 2)
              0x8a, 1, 2, "K", 1, 0x86,                                         // stride (2, 1)
              0x89,
              Short("collections"), Short("OrderedDict"), 0x93, "r", BitConverter.GetBytes(1000), ")", "R",
            "t", "R",
            "s");
        var stray = P("j", BitConverter.GetBytes(1000), ".");  // LONG_BINGET leaves the OrderedDict class on the stack
        using var tmp = new TempFolder();
        var bad = ZipWithPickle(tmp, [.. pickle, .. stray], "stray.pt");
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(bad));
        Assert.Contains("STOP with 2 values", ex.Message);

        var good = ZipWithPickle(tmp, [.. pickle, (byte)'.'], "good.pt");
        using var f = PyTorchCheckpointFile.Open(good);
        Assert.Equal("w", Assert.Single(f.Tensors).Name);
        using var t = f.Read("w");
        Assert.Equal(new long[] { 2, 2 }, t.shape);
        Assert.Equal(new float[4], t.data<float>().ToArray());
    }

    [Fact]
    public void Truncated_pickle_is_reported()
    {
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, P(0x80, 2, "}", Uni("a")));
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("ends early", ex.Message);
    }

    [Fact]
    public void A_top_level_value_that_is_not_a_dict_is_reported()
    {
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, P(0x80, 2, "K", 7, "."));
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("not a state dict", ex.Message);
    }

    [Fact]
    public void Views_reaching_past_their_storage_are_reported()
    {
        // storage '0' has 16 bytes = 4 floats; the view asks for 3x2 at offset 1.
        static byte[] Short(string s) => P(0x8c, s.Length, s);
        var pickle = P(0x80, 2, "}",
            Short("w"),
            "c", "torch._utils\n_rebuild_tensor_v2\n",
            "(", "(", Short("storage"), "c", "torch\nFloatStorage\n", Short("0"), Short("cpu"), "K", 4, "t", "Q",
            "K", 1, "K", 3, "K", 2, 0x86, "K", 2, "K", 1, 0x86, 0x89, "N", "t", "R",
            "s", ".");
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, pickle);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("tensor 'w'", ex.Message);
        Assert.Contains("reaches element", ex.Message);
    }
    [Theory]
    [InlineData(2, 3, null)]                     // view of elements [2, 5) of a 4-element storage
    [InlineData(-1, 2, "expected (view_key, offset, size)")]
    public void Legacy_storage_view_metadata_is_checked(int offset, int size, string? message)
    {
        // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 4, ('v', offset, size)), 0, (1,), (1,), False, None)}
        static byte[] Short(string s) => P(0x8c, s.Length, s);
        var pickle = P(0x80, 2, "}",
            Short("w"),
            "c", "torch._utils\n_rebuild_tensor_v2\n",
            "(", "(", Short("storage"), "c", "torch\nFloatStorage\n", Short("0"), Short("cpu"), "K", 4,
                 "(", Short("v"), "J", BitConverter.GetBytes(offset), "K", size, "t", "t", "Q",
            "K", 0, "K", 1, 0x85, "K", 1, 0x85, 0x89, "N", "t", "R",
            "s", ".");
        using var tmp = new TempFolder();
        var path = ZipWithPickle(tmp, pickle);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains(message ?? "reaches past the 4 elements of storage '0'", ex.Message);
        Assert.Contains("hand.pt", ex.Message);
    }

    [Fact]
    public void Consecutive_pickles_are_read_one_at_a_time_from_a_stream()
    {
        // 1001, then {'a': True}, then a 10-byte LONG1 (the legacy magic number), then bytes that are not a pickle.
        var bytes = P(0x80, 2, "M", BitConverter.GetBytes((ushort)1001), ".",
                      0x80, 2, "}", Uni("a"), 0x88, "s", ".",
                      0x80, 2, 0x8a, 10, new byte[] { 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 }, ".",
                      new byte[] { 1, 2, 3 });
        using var ms = new MemoryStream(bytes);
        Assert.Equal(1001L, RestrictedUnpickler.Load(ms));
        Assert.Equal(6, ms.Position);
        var d = Assert.IsType<RestrictedUnpickler.PyDict>(RestrictedUnpickler.Load(ms));
        Assert.Equal(true, Assert.Single(d.Items).Value);
        var magic = Assert.IsType<System.Numerics.BigInteger>(RestrictedUnpickler.Load(ms));
        Assert.Equal(System.Numerics.BigInteger.Parse("1950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber), magic);
        Assert.Equal(bytes.Length - 3, ms.Position);
        var ex = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(ms));
        Assert.Contains("unsupported pickle opcode", ex.Message);
        ms.Position = bytes.Length;
        ex = Assert.Throws<InvalidDataException>(() => RestrictedUnpickler.Load(ms));
        Assert.Contains("ends early", ex.Message);
    }
}
