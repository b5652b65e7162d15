using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Lora;
using BertHost.Tests.Bert;
using BertHost.Tests.Training;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

/// <summary>
/// PEFT interop. PyPI is out of reach here, so the PEFT side is written and read by hand from PEFT's documented layout
/// (huggingface/peft docs/source/developer_guides/checkpoint.md; LoraConfig's fields): a safetensors file is an 8-byte
/// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}} and the raw
/// little-endian data, independent of the host's own writer and reader.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class PeftAdapterTests
{
    private static string LoraHeadFolder_(BertBody body, LoraAdapter adapter)
    {
        var folder = Path.Combine(TempFolder(), "head");
        using var head = TrainingData.Head(body);
        head.Save(folder, new HeadSaveInfo(body.Fingerprint, null));
        LoraHeadFolder.Attach(folder, adapter);
        return folder;
    }

    /// <summary>The header of a safetensors file, parsed by hand.</summary>
    private static JsonObject Header(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, length))!.AsObject();
    }

    /// <summary>A float32 safetensors file written by hand.</summary>
    private static void WriteSafetensors(string path, IReadOnlyList<(string Name, long[] Shape, float[] Data)> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, shape, data) in tensors)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + data.Length * 4),
            };
            offset += data.Length * 4;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)json.Length);
        file.Write(length);
        file.Write(json);
        foreach (var (_, _, data) in tensors)
            foreach (var v in data)
            {
                Span<byte> b = stackalloc byte[4];
                BinaryPrimitives.WriteSingleLittleEndian(b, v);
                file.Write(b);
            }
    }

    [Fact]
    public void Export_writes_the_keys_shapes_and_config_fields_peft_writes_and_import_reads_them_back()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu" });
        using var adapter = LoraPassTests.RandomAdapter(body, new LoraSettings(4, 8, 0.05, ["query", "value"]), seed: 9);
        var head = LoraHeadFolder_(body, adapter);
        var peft = Path.Combine(TempFolder(), "peft");
        var result = PeftAdapter.Export(head, peft, "my/base");
        Assert.Equal(8, result);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(peft, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", (string)config["peft_type"]!);
        Assert.Equal(4, (int)config["r"]!);
        Assert.Equal(8.0, (double)config["lora_alpha"]!);
        Assert.Equal(0.05, (double)config["lora_dropout"]!);
        Assert.Equal("none", (string)config["bias"]!);
        Assert.Equal(["query", "value"], config["target_modules"]!.AsArray().Select(t => (string)t!));
        Assert.Equal("my/base", (string)config["base_model_name_or_path"]!);
        Assert.False((bool)config["use_dora"]!);

        var header = Header(Path.Combine(peft, "adapter_model.safetensors"));
        Assert.Equal("pt", (string)header["__metadata__"]!["format"]!);
        var names = header.Select(kv => kv.Key).Where(k => k != "__metadata__").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(8, names.Count);
        Assert.Contains("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", names);
        Assert.Contains("base_model.model.encoder.layer.1.attention.self.value.lora_B.weight", names);
        Assert.Equal([4L, 48], header["base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"]!["shape"]!.AsArray().Select(x => (long)x!));
        Assert.Equal([48L, 4], header["base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"]!["shape"]!.AsArray().Select(x => (long)x!));
        Assert.All(names, n => Assert.Equal("F32", (string)header[n]!["dtype"]!));

        // Round trip: into a plain head folder, then the served adapter equals the original.
        using var plain = TrainingData.Head(body);
        var target = Path.Combine(TempFolder(), "imported");
        plain.Save(target, new HeadSaveInfo(body.Fingerprint, null));
        Assert.Equal(4, PeftAdapter.Import(peft, target, out var ignored));
        Assert.Empty(ignored);
        using var back = LoraHeadFolder.Read(target, body.Model)!;
        Assert.Equal(adapter.Settings.Rank, back.Settings.Rank);
        Assert.Equal(adapter.Settings.Alpha, back.Settings.Alpha);
        foreach (var (key, p) in adapter.NamedParameters())
            Assert.True(p.eq(back.NamedParameters().Single(x => x.Key == key).Parameter).all().item<bool>(), key);
    }

    [Fact]
    public void A_hand_written_peft_folder_of_a_task_model_imports_and_its_classifier_is_left_out()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu" });
        var peft = Path.Combine(TempFolder(), "peft");
        Directory.CreateDirectory(peft);
        // As PEFT saves a BertForSequenceClassification adapter (task_type SEQ_CLS): the body under "bert.", the
        // classifier in modules_to_save.
        File.WriteAllText(Path.Combine(peft, "adapter_config.json"), """
            {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "bert-base-uncased", "bias": "none",
             "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layers_pattern": null,
             "layers_to_transform": null, "lora_alpha": 4, "lora_dropout": 0.1, "modules_to_save": ["classifier"],
             "peft_type": "LORA", "r": 2, "rank_pattern": {}, "revision": null, "target_modules": ["query"],
             "task_type": "SEQ_CLS", "use_dora": false, "use_rslora": false}
            """);
        var a = Enumerable.Range(0, 2 * 48).Select(i => (float)Math.Sin(i) * 0.1f).ToArray();
        var b = Enumerable.Range(0, 48 * 2).Select(i => (float)Math.Cos(i) * 0.1f).ToArray();
        WriteSafetensors(Path.Combine(peft, "adapter_model.safetensors"),
        [
            ("base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight", [2, 48], a),
            ("base_model.model.bert.encoder.layer.1.attention.self.query.lora_B.weight", [48, 2], b),
            ("base_model.model.classifier.modules_to_save.weight", [2, 48], new float[96]),
        ]);
        using var plain = TrainingData.Head(body);
        var target = Path.Combine(TempFolder(), "imported");
        plain.Save(target, new HeadSaveInfo(body.Fingerprint, null));
        Assert.Equal(1, PeftAdapter.Import(peft, target, out var ignored));
        Assert.Equal(["base_model.model.classifier.modules_to_save.weight"], ignored);
        using var adapter = LoraHeadFolder.Read(target, body.Model)!;
        Assert.Equal(2.0, adapter.Settings.Scale);
        var pair = adapter.Pairs["encoder.layer.1.attention.self.query"];
        Assert.Equal(a, pair.A.data<float>().ToArray());
        Assert.Equal(b, pair.B.data<float>().ToArray());
    }

    [Theory]
    [InlineData("\"use_dora\": true", "use_dora is not supported")]
    [InlineData("\"use_rslora\": true", "use_rslora is not supported")]
    [InlineData("\"bias\": \"all\"", "bias 'all' is not supported")]
    [InlineData("\"peft_type\": \"IA3\"", "peft_type 'IA3' is not LORA")]
    [InlineData("\"rank_pattern\": {\"query\": 4}", "rank_pattern (per-module ranks) is not supported")]
    public void What_the_host_cannot_compute_the_same_way_is_refused_naming_the_field(string field, string message)
    {
        var peft = Path.Combine(TempFolder(), "peft");
        Directory.CreateDirectory(peft);
        File.WriteAllText(Path.Combine(peft, "adapter_config.json"), $$"""{"r": 2, "lora_alpha": 4, "target_modules": ["query"], {{field}}}""");
        var e = Assert.Throws<FormatException>(() => PeftAdapter.Read(peft, out _));
        Assert.Contains(message, e.Message);
    }
}
