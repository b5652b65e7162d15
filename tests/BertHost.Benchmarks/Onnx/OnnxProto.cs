using Google.Protobuf;

namespace BertHost.Benchmarks.Onnx;

/// <summary>
/// The subset of <c>onnx.proto</c> (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto,
/// OperatorSetIdProto) needed to write an inference graph, serialised with Google.Protobuf's wire-format writer.
/// Field numbers are those of the public onnx/onnx <c>onnx.proto</c> (proto2: repeated scalars are written unpacked).
/// </summary>
public static class OnnxProto
{
    public enum DataType { Float = 1, UInt8 = 2, Int8 = 3, Int32 = 6, Int64 = 7 }

    private enum AttributeType { Float = 1, Int = 2, Ints = 7 }

    /// <summary>A message under construction: fields appended in order, then its bytes.</summary>
    public sealed class Message
    {
        private readonly MemoryStream _buffer = new();
        private readonly CodedOutputStream _out;

        public Message() => _out = new CodedOutputStream(_buffer, leaveOpen: true);

        public Message Int64(int field, long value)
        {
            _out.WriteTag(field, WireFormat.WireType.Varint);
            _out.WriteInt64(value);
            return this;
        }

        public Message Int32(int field, int value)
        {
            _out.WriteTag(field, WireFormat.WireType.Varint);
            _out.WriteInt32(value);
            return this;
        }

        public Message Float(int field, float value)
        {
            _out.WriteTag(field, WireFormat.WireType.Fixed32);
            _out.WriteFloat(value);
            return this;
        }

        public Message String(int field, string value)
        {
            _out.WriteTag(field, WireFormat.WireType.LengthDelimited);
            _out.WriteString(value);
            return this;
        }

        public Message Bytes(int field, ReadOnlySpan<byte> value)
        {
            _out.WriteTag(field, WireFormat.WireType.LengthDelimited);
            _out.WriteLength(value.Length);
            // Large payloads (weights) go straight to the buffer instead of through a ByteString copy.
            _out.Flush();
            _buffer.Write(value);
            return this;
        }

        public Message Nested(int field, Message child) => Bytes(field, child.ToBytes());

        public byte[] ToBytes()
        {
            _out.Flush();
            return _buffer.ToArray();
        }
    }

    public static Message Tensor(string name, DataType type, long[] dims, ReadOnlySpan<byte> raw)
    {
        var m = new Message();
        foreach (var d in dims) m.Int64(1, d);
        return m.Int32(2, (int)type).String(8, name).Bytes(9, raw);
    }

    public static Message FloatTensor(string name, long[] dims, float[] values) =>
        Tensor(name, DataType.Float, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    public static Message Int64Tensor(string name, long[] dims, long[] values) =>
        Tensor(name, DataType.Int64, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    /// <summary>A graph input or output: a tensor of <paramref name="type"/> whose dims are fixed sizes or named (symbolic).</summary>
    public static Message ValueInfo(string name, DataType type, params object[] dims)
    {
        var shape = new Message();
        foreach (var d in dims)
        {
            var dim = d is string symbol ? new Message().String(2, symbol) : new Message().Int64(1, Convert.ToInt64(d));
            shape.Nested(1, dim);
        }
        var tensorType = new Message().Int32(1, (int)type).Nested(2, shape);
        var typeProto = new Message().Nested(1, tensorType);
        return new Message().String(1, name).Nested(2, typeProto);
    }

    public static Message Node(string opType, string name, string[] inputs, string[] outputs, params Message[] attributes)
    {
        var m = new Message();
        foreach (var i in inputs) m.String(1, i);
        foreach (var o in outputs) m.String(2, o);
        m.String(3, name).String(4, opType);
        foreach (var a in attributes) m.Nested(5, a);
        return m;
    }

    public static Message IntAttribute(string name, long value) =>
        new Message().String(1, name).Int64(3, value).Int32(20, (int)AttributeType.Int);

    public static Message FloatAttribute(string name, float value) =>
        new Message().String(1, name).Float(2, value).Int32(20, (int)AttributeType.Float);

    public static Message IntsAttribute(string name, params long[] values)
    {
        var m = new Message().String(1, name);
        foreach (var v in values) m.Int64(8, v);
        return m.Int32(20, (int)AttributeType.Ints);
    }

    public static Message Graph(string name, IEnumerable<Message> nodes, IEnumerable<Message> initializers,
        IEnumerable<Message> inputs, IEnumerable<Message> outputs)
    {
        var m = new Message();
        foreach (var n in nodes) m.Nested(1, n);
        m.String(2, name);
        foreach (var t in initializers) m.Nested(5, t);
        foreach (var i in inputs) m.Nested(11, i);
        foreach (var o in outputs) m.Nested(12, o);
        return m;
    }

    /// <summary>ModelProto: IR version 8, the default-domain opset <paramref name="opset"/>.</summary>
    public static byte[] Model(Message graph, int opset, string producer)
    {
        var opsetId = new Message().String(1, "").Int64(2, opset);
        return new Message()
            .Int64(1, 8)
            .String(2, producer)
            .String(3, "1")
            .Nested(7, graph)
            .Nested(8, opsetId)
            .ToBytes();
    }
}
