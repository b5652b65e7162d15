using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// A deliberately small pickle VM for the pickles <c>torch.save</c> writes (pickle protocol 2): the <c>data.pkl</c> of
/// zip checkpoints and the consecutive pickles of the legacy (pre-1.6) format. It reads one pickle from a stream, up to
/// and including its STOP opcode, and leaves the stream just after it, so consecutive pickles can be read one by one.
/// It never imports or calls anything: the only globals it accepts are a fixed list (OrderedDict, torch's tensor and
/// parameter rebuild functions, storage types and dtypes), which it evaluates itself; any other global or opcode is
/// refused with an error that names it.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>A Python global reference (module.name) that was allowed.</summary>
    internal sealed record PyGlobal(string Module, string Name)
    {
        public string FullName => $"{Module}.{Name}";
    }

    /// <summary>A Python tuple.</summary>
    internal sealed record PyTuple(object?[] Items);

    /// <summary>A Python dict or OrderedDict (insertion-ordered).</summary>
    internal sealed class PyDict
    {
        private readonly Dictionary<object, int> _index = new();
        public List<KeyValuePair<object, object?>> Items { get; } = new();
        public Dictionary<string, object?> Attributes { get; } = new();

        public void Set(object? key, object? value)
        {
            if (key is null || key is PyDict || key is List<object?>)
                throw new InvalidDataException($"unsupported dict key {Describe(key)}");
            if (_index.TryGetValue(key, out var i)) Items[i] = new(key, value);
            else
            {
                _index[key] = Items.Count;
                Items.Add(new(key, value));
            }
        }
    }

    /// <summary>
    /// A storage referenced through a persistent id: ('storage', storage_type, key, location, numel) in the zip format,
    /// ('storage', storage_type, root_key, location, numel, view_metadata) in the legacy format. <see cref="Key"/> is
    /// always the key the bytes are stored under (the root storage); a legacy storage view, view_metadata
    /// (view_key, offset, view_size), starts <see cref="ViewOffset"/> elements into that root storage and has
    /// <see cref="Numel"/> = view_size elements. Offsets and counts are in elements of <see cref="DType"/>.
    /// </summary>
    internal sealed record StorageRef(string DType, string Key, string Location, long Numel, long ViewOffset = 0);

    /// <summary>The result of <c>torch._utils._rebuild_tensor_v2</c>: a view of a storage.</summary>
    internal sealed record TensorRef(StorageRef Storage, long StorageOffset, long[] Size, long[] Stride);

    /// <summary>A torch dtype global such as torch.float32.</summary>
    internal sealed record DTypeRef(string DType);

    private static readonly Dictionary<string, string> StorageTypes = new()
    {
        ["FloatStorage"] = "F32", ["HalfStorage"] = "F16", ["BFloat16Storage"] = "BF16", ["DoubleStorage"] = "F64",
        ["LongStorage"] = "I64", ["IntStorage"] = "I32", ["ShortStorage"] = "I16", ["CharStorage"] = "I8",
        ["ByteStorage"] = "U8", ["BoolStorage"] = "BOOL",
    };

    private static readonly Dictionary<string, string> DTypeGlobals = new()
    {
        ["float32"] = "F32", ["float"] = "F32", ["float16"] = "F16", ["half"] = "F16", ["bfloat16"] = "BF16",
        ["float64"] = "F64", ["double"] = "F64", ["int64"] = "I64", ["long"] = "I64", ["int32"] = "I32", ["int"] = "I32",
        ["int16"] = "I16", ["short"] = "I16", ["int8"] = "I8", ["uint8"] = "U8", ["bool"] = "BOOL",
    };

    private static readonly PyGlobal OrderedDict = new("collections", "OrderedDict");
    private static readonly PyGlobal RebuildTensorV2 = new("torch._utils", "_rebuild_tensor_v2");
    private static readonly PyGlobal RebuildParameter = new("torch._utils", "_rebuild_parameter");

    /// <summary>The most a single pickle may be (the zip format's data.pkl limit too).</summary>
    public const long MaxPickleBytes = 1L << 30;

    private readonly Stream _in;
    private readonly long _remaining; // bytes left in a seekable stream when the pickle started, else long.MaxValue
    private readonly List<StorageRef>? _storages;
    private byte[] _scratch = new byte[256];
    private long _pos;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<int, object?> _memo = new();

    private RestrictedUnpickler(Stream input, List<StorageRef>? storages)
    {
        _in = input;
        _storages = storages;
        _remaining = input.CanSeek ? Math.Max(0, input.Length - input.Position) : long.MaxValue;
    }

    /// <summary>Runs the pickle and returns its result. Throws <see cref="InvalidDataException"/> on anything refused or malformed.</summary>
    public static object? Load(byte[] pickle) => Load(new MemoryStream(pickle, writable: false));

    /// <summary>
    /// Runs one pickle from the stream's position up to and including its STOP opcode and returns its result; the stream
    /// is left just after the STOP (any data after it is not read). When <paramref name="storages"/> is given, every
    /// storage the pickle refers to through a persistent id is added to it, in pickle order. Offsets in messages count
    /// from the pickle's first byte. Throws <see cref="InvalidDataException"/> on anything refused or malformed, and
    /// when the stream ends before the STOP.
    /// </summary>
    public static object? Load(Stream input, List<StorageRef>? storages = null) => new RestrictedUnpickler(input, storages).Run();

    private object? Run()
    {
        while (true)
        {
            var at = _pos;
            var op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    var proto = ReadByte();
                    if (proto > 5) throw Fail(at, $"unsupported pickle protocol {proto}");
                    break;
                case 0x95: // FRAME (protocol 4): an 8-byte frame length; frames need no special handling here
                    Skip(8);
                    break;
                case (byte)'c': // GLOBAL "module\nname\n"
                    Push(ResolveGlobal(at, ReadLine(), ReadLine()));
                    break;
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string;
                    var module = Pop() as string;
                    if (name is null || module is null) throw Fail(at, "STACK_GLOBAL needs two strings");
                    Push(ResolveGlobal(at, module, name));
                    break;
                }
                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(at, Pop()));
                    break;
                case (byte)'R': // REDUCE
                {
                    var args = Pop() as PyTuple ?? throw Fail(at, "REDUCE arguments are not a tuple");
                    var func = Pop();
                    Push(Reduce(at, func, args.Items));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    Build(at, target, state);
                    break;
                }
                case (byte)'(': // MARK
                    _marks.Push(_stack.Count);
                    break;
                case (byte)'t': // TUPLE
                    Push(new PyTuple(PopMark(at).ToArray()));
                    break;
                case (byte)')': // EMPTY_TUPLE
                    Push(new PyTuple([]));
                    break;
                case 0x85: // TUPLE1
                    Push(new PyTuple([Pop()]));
                    break;
                case 0x86: // TUPLE2
                {
                    var b = Pop();
                    var a = Pop();
                    Push(new PyTuple([a, b]));
                    break;
                }
                case 0x87: // TUPLE3
                {
                    var c = Pop();
                    var b = Pop();
                    var a = Pop();
                    Push(new PyTuple([a, b, c]));
                    break;
                }
                case (byte)']': // EMPTY_LIST
                    Push(new List<object?>());
                    break;
                case (byte)'a': // APPEND
                {
                    var v = Pop();
                    (Peek() as List<object?> ?? throw Fail(at, "APPEND target is not a list")).Add(v);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopMark(at);
                    (Peek() as List<object?> ?? throw Fail(at, "APPENDS target is not a list")).AddRange(items);
                    break;
                }
                case (byte)'}': // EMPTY_DICT
                    Push(new PyDict());
                    break;
                case (byte)'s': // SETITEM
                {
                    var v = Pop();
                    var k = Pop();
                    SetItem(at, Peek(), k, v);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark(at);
                    if (items.Count % 2 != 0) throw Fail(at, "SETITEMS with an odd number of items");
                    var target = Peek();
                    for (var i = 0; i < items.Count; i += 2) SetItem(at, target, items[i], items[i + 1]);
                    break;
                }
                case (byte)'q': // BINPUT
                    _memo[ReadByte()] = Peek();
                    break;
                case (byte)'r': // LONG_BINPUT
                    _memo[ReadInt32(at)] = Peek();
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = Peek();
                    break;
                case (byte)'h': // BINGET
                    Push(GetMemo(at, ReadByte()));
                    break;
                case (byte)'j': // LONG_BINGET
                    Push(GetMemo(at, ReadInt32(at)));
                    break;
                case (byte)'J': // BININT
                    Push((long)ReadInt32(at));
                    break;
                case (byte)'K': // BININT1
                    Push((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)));
                    break;
                case 0x8a: // LONG1
                    Push(ReadLong1(at));
                    break;
                case (byte)'G': // BINFLOAT (big-endian double)
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8)));
                    break;
                case (byte)'X': // BINUNICODE
                {
                    var n = ReadInt32(at);
                    if (n < 0) throw Fail(at, "negative string length");
                    Push(Encoding.UTF8.GetString(Take(n)));
                    break;
                }
                case 0x8c: // SHORT_BINUNICODE
                    Push(Encoding.UTF8.GetString(Take(ReadByte())));
                    break;
                case (byte)'N': // NONE
                    Push(null);
                    break;
                case 0x88: // NEWTRUE
                    Push(true);
                    break;
                case 0x89: // NEWFALSE
                    Push(false);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1) throw Fail(at, $"STOP with {_stack.Count} values on the stack");
                    return _stack[0];
                default:
                    throw Fail(at, $"unsupported pickle opcode {OpcodeName(op)} (0x{op:x2})");
            }
        }
    }

    private object ResolveGlobal(long at, string module, string name)
    {
        if (module == "collections" && name == "OrderedDict") return OrderedDict;
        if (module == "torch._utils" && name is "_rebuild_tensor_v2" or "_rebuild_parameter") return new PyGlobal(module, name);
        if (module == "torch" && StorageTypes.TryGetValue(name, out var dt)) return new DTypeRef(dt);
        if (module == "torch" && DTypeGlobals.TryGetValue(name, out var dt2)) return new DTypeRef(dt2);
        if (module is "torch" or "torch.storage" && name == "UntypedStorage") return new DTypeRef("U8");
        throw Fail(at, $"refusing pickle global '{module}.{name}': only tensors, storages and OrderedDict are allowed " +
                       "(this loader never runs code from a checkpoint)");
    }

    private object PersistentLoad(long at, object? pid)
    {
        // zip: ('storage', storage_type, key, location, numel)
        // legacy: ('storage', storage_type, root_key, location, numel, view_metadata), view_metadata None or (view_key, offset, view_size)
        if (pid is not PyTuple { Items: [string tag, var type, var key, var location, var numel, .. var rest] } ||
            tag != "storage" || rest.Length > 1)
            throw Fail(at, $"unsupported persistent id {Describe(pid)}; expected ('storage', type, key, location, numel[, view_metadata])");
        if (type is not DTypeRef dtype) throw Fail(at, $"persistent id storage type {Describe(type)} is not a torch storage type");
        var k = StorageKey(at, key);
        if (numel is not long n || n < 0) throw Fail(at, $"persistent id numel {Describe(numel)} is not a count");
        var storage = new StorageRef(dtype.DType, k, location as string ?? "", n);
        if (rest is [PyTuple view])
        {
            if (view.Items is not [var viewKey, long offset, long viewSize] || offset < 0 || viewSize < 0)
                throw Fail(at, $"storage '{k}' has view metadata {Describe(view)}; expected (view_key, offset, size)");
            StorageKey(at, viewKey);
            if (offset > n || viewSize > n - offset)
                throw Fail(at, $"storage view of {viewSize} elements at offset {offset} reaches past the {n} elements of storage '{k}'");
            storage = storage with { Numel = viewSize, ViewOffset = offset };
        }
        else if (rest is [var other] && other is not null)
            throw Fail(at, $"storage '{k}' has view metadata {Describe(other)}; expected None or (view_key, offset, size)");
        _storages?.Add(storage);
        return storage;
    }

    private string StorageKey(long at, object? key) => key switch
    {
        string s => s,
        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => throw Fail(at, $"persistent id key {Describe(key)} is not a string"),
    };

    private object? Reduce(long at, object? func, object?[] args)
    {
        if (ReferenceEquals(func, OrderedDict) || func is PyGlobal { Module: "collections", Name: "OrderedDict" })
        {
            var d = new PyDict();
            if (args.Length == 0) return d;
            if (args is [List<object?> pairs])
            {
                foreach (var p in pairs)
                {
                    if (p is not PyTuple { Items: [var k, var v] }) throw Fail(at, "OrderedDict items are not pairs");
                    d.Set(k, v);
                }
                return d;
            }
            throw Fail(at, "unsupported OrderedDict arguments");
        }
        if (func is PyGlobal g && g == RebuildTensorV2)
        {
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            if (args.Length is < 6 or > 7) throw Fail(at, $"_rebuild_tensor_v2 with {args.Length} arguments");
            if (args[0] is not StorageRef storage) throw Fail(at, $"_rebuild_tensor_v2 storage is {Describe(args[0])}");
            if (args[1] is not long offset || offset < 0) throw Fail(at, $"_rebuild_tensor_v2 storage_offset is {Describe(args[1])}");
            var size = LongTuple(at, args[2], "size");
            var stride = LongTuple(at, args[3], "stride");
            if (size.Length != stride.Length) throw Fail(at, $"_rebuild_tensor_v2 size has {size.Length} dims but stride {stride.Length}");
            return new TensorRef(storage, offset, size, stride);
        }
        if (func is PyGlobal g2 && g2 == RebuildParameter)
        {
            // (data, requires_grad, backward_hooks)
            if (args.Length < 1 || args[0] is not TensorRef t) throw Fail(at, "_rebuild_parameter without a tensor");
            return t;
        }
        throw Fail(at, $"refusing to call {Describe(func)}");
    }

    private void Build(long at, object? target, object? state)
    {
        // OrderedDict.__reduce__ gives its instance __dict__ as the state, e.g. {'_metadata': OrderedDict(...)}.
        if (target is PyDict d)
        {
            if (state is null) return;
            if (state is not PyDict s) throw Fail(at, $"BUILD on a dict with state {Describe(state)}");
            foreach (var (k, v) in s.Items)
                if (k is string name) d.Attributes[name] = v;
            return;
        }
        throw Fail(at, $"refusing BUILD on {Describe(target)}");
    }

    private void SetItem(long at, object? target, object? key, object? value)
    {
        if (target is not PyDict d) throw Fail(at, $"SETITEM target is {Describe(target)}, not a dict");
        try
        {
            d.Set(key, value);
        }
        catch (InvalidDataException e)
        {
            throw Fail(at, e.Message);
        }
    }

    private long[] LongTuple(long at, object? value, string what)
    {
        if (value is not PyTuple t) throw Fail(at, $"_rebuild_tensor_v2 {what} is {Describe(value)}");
        var result = new long[t.Items.Length];
        for (var i = 0; i < result.Length; i++)
            result[i] = t.Items[i] is long l && l >= 0 ? l : throw Fail(at, $"_rebuild_tensor_v2 {what} holds {Describe(t.Items[i])}");
        return result;
    }

    private object? GetMemo(long at, int index) =>
        _memo.TryGetValue(index, out var v) ? v : throw Fail(at, $"memo entry {index} was never stored");

    private List<object?> PopMark(long at)
    {
        if (_marks.Count == 0) throw Fail(at, "no MARK on the stack");
        var start = _marks.Pop();
        var items = _stack.GetRange(start, _stack.Count - start);
        _stack.RemoveRange(start, _stack.Count - start);
        return items;
    }

    private void Push(object? v) => _stack.Add(v);

    private object? Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks.Peek() >= _stack.Count))
            throw Fail(_pos - 1, "stack underflow");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        if (_stack.Count == 0) throw Fail(_pos - 1, "stack underflow");
        return _stack[^1];
    }

    private byte ReadByte()
    {
        if (_pos >= _remaining) throw Fail(_pos, "pickle data ends early");
        var b = _in.ReadByte();
        if (b < 0) throw Fail(_pos, "pickle data ends early");
        _pos++;
        return (byte)b;
    }

    private int ReadInt32(long at) => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    private object ReadLong1(long at)
    {
        var n = ReadByte();
        var bytes = Take(n);
        if (n == 0) return 0L;
        // Wider integers (the legacy format's magic number is 10 bytes) are returned as BigInteger; nothing that needs
        // a count or an offset accepts those.
        if (n > 8) return new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        long v = (sbyte)bytes[n - 1] < 0 ? -1L : 0L; // sign-extend
        for (var i = n - 1; i >= 0; i--) v = (v << 8) | bytes[i];
        return v;
    }

    private string ReadLine()
    {
        const int maxLine = 1024;
        var start = _pos;
        var line = new List<byte>();
        while (true)
        {
            var b = ReadByte();
            if (b == (byte)'\n') return Encoding.UTF8.GetString(line.ToArray());
            if (line.Count == maxLine) throw Fail(start, $"GLOBAL line longer than {maxLine} bytes");
            line.Add(b);
        }
    }

    private void Skip(int n) => Take(n);

    /// <summary>The next <paramref name="n"/> bytes; the span is only valid until the next read.</summary>
    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || n > _remaining - _pos) throw Fail(_pos, "pickle data ends early");
        if (_pos + n > MaxPickleBytes) throw Fail(_pos, $"pickle is larger than the {MaxPickleBytes} bytes allowed");
        if (_scratch.Length < n) _scratch = new byte[Math.Max(n, _scratch.Length * 2)];
        var span = _scratch.AsSpan(0, n);
        try
        {
            _in.ReadExactly(span);
        }
        catch (EndOfStreamException)
        {
            throw Fail(_pos, "pickle data ends early");
        }
        _pos += n;
        return span;
    }

    private static InvalidDataException Fail(long at, string message) => new($"{message} (pickle offset {at})");

    internal static string Describe(object? v) => v switch
    {
        null => "None",
        string s => $"'{s}'",
        long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
        BigInteger i => i.ToString(System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "True" : "False",
        PyGlobal g => g.FullName,
        PyTuple t => $"a tuple of {t.Items.Length}",
        PyDict => "a dict",
        List<object?> => "a list",
        TensorRef => "a tensor",
        StorageRef => "a storage",
        DTypeRef d => $"dtype {d.DType}",
        _ => v.GetType().Name,
    };

    private static string OpcodeName(byte op) => op switch
    {
        (byte)'B' => "BINBYTES",
        (byte)'C' => "SHORT_BINBYTES",
        0x8e => "BINBYTES8",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8b => "LONG4",
        0x8d => "BINUNICODE8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        (byte)'I' => "INT",
        (byte)'L' => "LONG",
        (byte)'F' => "FLOAT",
        (byte)'S' => "STRING",
        (byte)'T' => "BINSTRING",
        (byte)'U' => "SHORT_BINSTRING",
        (byte)'V' => "UNICODE",
        (byte)'P' => "PERSID",
        (byte)'p' => "PUT",
        (byte)'g' => "GET",
        (byte)'l' => "LIST",
        (byte)'d' => "DICT",
        (byte)'0' => "POP",
        (byte)'1' => "POP_MARK",
        (byte)'2' => "DUP",
        _ => "unknown",
    };
}
