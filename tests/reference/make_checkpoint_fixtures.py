#!/usr/bin/env python3
"""Generates the small checkpoint fixtures under tests/BertHost.Tests/Fixtures/checkpoints/.

Run from anywhere with a python that has torch (tested with torch 1.13):
    python3 tests/reference/make_checkpoint_fixtures.py

The output is committed, so the C# tests never need Python. Everything is deterministic (fixed seed), but torch's zip
writer is not byte-for-byte reproducible across torch versions, so only regenerate when the fixtures must change.

Files written:
  state_dict.pt             torch.save (zip format) of an OrderedDict with _metadata: every dtype, views with strides
                            and storage offsets, tied tensors sharing one storage, a 0-dim scalar, an empty tensor,
                            an nn.Parameter (torch._utils._rebuild_parameter), the same tensor object under two keys
  state_dict.expected.json  for every key: dtype (safetensors spelling), shape, values (flattened, row-major; absent
                            when non-finite) and hex (the little-endian bytes of the contiguous tensor)
  legacy.pt                 the same state dict saved with _use_new_zipfile_serialization=False (the legacy, pre-1.6,
                            non-zip format; every dtype, views, tied storages): reads back equal to
                            state_dict.expected.json
  legacy_storage_views.pt   a legacy-format file written by hand here, whose persistent ids carry view_metadata
                            (storage views, which torch >= 1.0 no longer writes but still loads), plus
  legacy_storage_views.expected.json  what torch.load gives for it
  evil.pt                   a zip checkpoint whose pickle calls builtins.print (must be refused, never executed)
  reference.safetensors     a safetensors file written by hand here (independent of the C# writer), with metadata
  sharded_bin/              pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json (HF sharding layout)

and, under tests/BertHost.Tests/Fixtures/models/:
  tiny-bert-legacy-format/  tiny-bert-pt's pytorch_model.bin loaded with torch and re-saved in the legacy format (tied
                            decoder/word-embedding storage kept), with copies of its config.json, vocab.txt and
                            tokenizer_config.json (tiny-bert-pt comes from make_model_fixtures.py; run that first)
"""
import collections
import json
import os
import pickle
import shutil
import struct
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BertHost.Tests", "Fixtures", "checkpoints")
MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BertHost.Tests", "Fixtures", "models")

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def raw_bytes(t):
    """Little-endian bytes of the contiguous tensor (bf16/f16 reinterpreted as int16 so numpy is not needed)."""
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    assert sys.byteorder == "little"
    return t.numpy().tobytes()


def build_state_dict():
    torch.manual_seed(1234)
    sd = collections.OrderedDict()
    sd["dtypes.f32"] = torch.randn(3, 4)
    sd["dtypes.f16"] = torch.randn(2, 3).half()
    sd["dtypes.bf16"] = torch.randn(5).bfloat16()
    sd["dtypes.f64"] = torch.randn(2, 2, dtype=torch.float64)
    sd["dtypes.i64"] = torch.tensor([-3, -1, 0, 1, 2**40, -(2**62)], dtype=torch.int64)
    sd["dtypes.i32"] = torch.tensor([[1, -2], [2147483647, -2147483648]], dtype=torch.int32)
    sd["dtypes.i16"] = torch.tensor([-32768, 0, 32767], dtype=torch.int16)
    sd["dtypes.i8"] = torch.tensor([-128, -1, 127], dtype=torch.int8)
    sd["dtypes.u8"] = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    sd["dtypes.bool"] = torch.tensor([True, False, True, True])
    # Special half/bfloat16 values: only the bytes are compared (JSON has no inf/nan).
    sd["special.f16"] = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0, 6.1e-5, 65504.0],
                                     dtype=torch.float16)
    sd["special.bf16"] = torch.tensor([float("inf"), float("-inf"), float("nan"), -0.0, 1e-38, 3.0e38],
                                      dtype=torch.bfloat16)

    # Views: torch.save keeps the view's storage, storage_offset and strides.
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd["views.transposed"] = base.t()                              # stride (1, 4), not contiguous
    long_ = torch.arange(100, 120, dtype=torch.float32)
    sd["views.slice"] = long_[5:11]                                # storage_offset 5, contiguous
    sd["views.slice2d"] = long_.reshape(4, 5)[1:3, 1:4]            # storage_offset 6, stride (5, 1)
    sd["views.strided_half"] = torch.arange(16, dtype=torch.float16)[1::3]   # offset 1, stride 3

    # Tied: two tensor objects over one storage (what Module.state_dict() gives for tied weights) ...
    w = torch.randn(4, 3)
    sd["tied.decoder.weight"] = w.detach()
    sd["tied.word_embeddings.weight"] = w.detach()
    # ... and one tensor object under two keys (memoized by the pickler: BINGET).
    same = torch.randn(2)
    sd["same.a"] = same
    sd["same.b"] = same

    sd["shapes.scalar"] = torch.tensor(3.5)
    sd["shapes.empty"] = torch.zeros(0, 3)
    sd["shapes.param"] = torch.nn.Parameter(torch.randn(2, 2))   # torch._utils._rebuild_parameter

    sd._metadata = collections.OrderedDict()
    sd._metadata[""] = {"version": 1}
    sd._metadata["layer"] = {"version": 2}
    return sd


def expected(sd):
    out = collections.OrderedDict()
    for k, t in sd.items():
        t = t.detach()
        entry = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "hex": raw_bytes(t).hex()}
        flat = t.contiguous().reshape(-1)
        if t.dtype == torch.bool:
            entry["values"] = [bool(x) for x in flat.tolist()]
        elif t.dtype.is_floating_point:
            if torch.isfinite(flat.float()).all():
                entry["values"] = [float(x) for x in flat.double().tolist()]
        else:
            entry["values"] = [int(x) for x in flat.tolist()]
        out[k] = entry
    return out


def write_safetensors(path, tensors, metadata=None):
    """A minimal, independent safetensors writer (the format: u64 LE header size, JSON header, data)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class _Storage:
    """A storage reference for the hand-written legacy pickle: becomes the persistent id
    ('storage', storage_type, root_key, location, numel, view_metadata), exactly as torch's _legacy_save spells it."""

    def __init__(self, storage_type, root_key, numel, view=None):
        self.pid = ("storage", storage_type, root_key, "cpu", numel, view)


class _Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def write_legacy_storage_views(path):
    """The legacy layout (torch/serialization.py _legacy_save) written by hand, so that persistent ids can carry
    view_metadata (view_key, offset, view_size): magic number, protocol version, sys_info, the state dict, the storage
    keys, then per key an int64 element count and the raw bytes."""
    root = torch.arange(100, 110, dtype=torch.float32)          # storage 'root': 10 floats
    ints = torch.tensor([7, -8, 2**40, -(2**50)], dtype=torch.int64)
    halves = torch.arange(6, dtype=torch.float16) / 4
    sd = collections.OrderedDict()
    # A view of root elements [2, 7); the tensor starts 1 element into it: root[3], root[4].
    sd["view.slice"] = _Tensor(_Storage(torch.FloatStorage, "root", 10, ("root_v2", 2, 5)), 1, [2], [1])
    # A view of root elements [6, 10) read transposed (stride (1, 2)): [[r6, r8], [r7, r9]].
    sd["view.transposed"] = _Tensor(_Storage(torch.FloatStorage, "root", 10, ("root_v6", 6, 4)), 0, [2, 2], [1, 2])
    # The whole root storage, no view metadata.
    sd["plain"] = _Tensor(_Storage(torch.FloatStorage, "root", 10), 0, [10], [1])
    # An int64 storage through a view of its last 3 elements, and a half storage without view.
    sd["ints.tail"] = _Tensor(_Storage(torch.LongStorage, "ints", 4, ("ints_v1", 1, 3)), 0, [3], [1])
    sd["halves"] = _Tensor(_Storage(torch.HalfStorage, "halves", 6), 0, [2, 3], [3, 1])
    storages = [("halves", halves), ("ints", ints), ("root", root)]   # sorted by key, as _legacy_save does

    with open(path, "wb") as f:
        pickle.dump(torch.serialization.MAGIC_NUMBER, f, protocol=2)
        pickle.dump(torch.serialization.PROTOCOL_VERSION, f, protocol=2)
        pickle.dump({"protocol_version": torch.serialization.PROTOCOL_VERSION, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        _LegacyPickler(f, protocol=2).dump(sd)
        pickle.dump([k for k, _ in storages], f, protocol=2)
        for _, t in storages:
            f.write(struct.pack("<q", t.numel()))
            f.write(raw_bytes(t))

    back = torch.load(path)
    assert list(back) == list(sd)
    assert back["view.slice"].tolist() == [103.0, 104.0]
    assert back["view.transposed"].tolist() == [[106.0, 108.0], [107.0, 109.0]]
    assert back["ints.tail"].tolist() == [-8, 2**40, -(2**50)]
    with open(os.path.splitext(path)[0] + ".expected.json", "w") as f:
        json.dump(expected(back), f, indent=1)


def write_tiny_bert_legacy_format():
    """tiny-bert-pt re-saved in the legacy format, with its config and tokenizer files."""
    src = os.path.join(MODELS, "tiny-bert-pt")
    dst = os.path.join(MODELS, "tiny-bert-legacy-format")
    os.makedirs(dst, exist_ok=True)
    sd = torch.load(os.path.join(src, "pytorch_model.bin"), map_location="cpu")
    tied = ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight")
    assert sd[tied[0]].data_ptr() == sd[tied[1]].data_ptr()
    out = os.path.join(dst, "pytorch_model.bin")
    torch.save(sd, out, _use_new_zipfile_serialization=False)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))

    with open(out, "rb") as f:
        assert f.read(4) == b"\x80\x02\x8a\x0a"      # legacy: the pickled magic number, not a zip
    back = torch.load(out, map_location="cpu")
    assert list(back) == list(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    assert back[tied[0]].data_ptr() == back[tied[1]].data_ptr()   # still one storage


class Evil:
    def __reduce__(self):
        import builtins
        return (builtins.print, ("this must never run",))


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = build_state_dict()
    torch.save(sd, os.path.join(OUT, "state_dict.pt"))
    torch.save(sd, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    write_legacy_storage_views(os.path.join(OUT, "legacy_storage_views.pt"))
    torch.save({"x": torch.ones(1), "evil": Evil()}, os.path.join(OUT, "evil.pt"))
    with open(os.path.join(OUT, "state_dict.expected.json"), "w") as f:
        json.dump(expected(sd), f, indent=1)

    # Sanity: torch reads back what it wrote, views included.
    back = torch.load(os.path.join(OUT, "state_dict.pt"))
    for k in sd:
        assert torch.equal(back[k].detach(), sd[k].detach()) or k.startswith("special."), k
    assert back["views.transposed"].stride() == (1, 4)
    assert back["views.slice"].storage_offset() == 5
    legacy = torch.load(os.path.join(OUT, "legacy.pt"))
    with open(os.path.join(OUT, "legacy.pt"), "rb") as f:
        assert f.read(4) == b"\x80\x02\x8a\x0a"
    assert list(legacy) == list(sd)
    for k in sd:
        assert torch.equal(legacy[k].detach(), sd[k].detach()) or k.startswith("special."), k
    assert raw_bytes(legacy["special.f16"]) == raw_bytes(sd["special.f16"])
    assert legacy["views.transposed"].stride() == (1, 4)
    assert legacy["tied.decoder.weight"].data_ptr() == legacy["tied.word_embeddings.weight"].data_ptr()

    st = collections.OrderedDict((k, v.detach()) for k, v in sd.items()
                                 if not k.startswith("views.") and not k.startswith("same.") and not k.startswith("tied."))
    write_safetensors(os.path.join(OUT, "reference.safetensors"), st, {"format": "pt", "note": "hand-written"})

    shard_dir = os.path.join(OUT, "sharded_bin")
    os.makedirs(shard_dir, exist_ok=True)
    torch.manual_seed(7)
    s1 = collections.OrderedDict([("embeddings.weight", torch.randn(4, 2)), ("layer.0.weight", torch.randn(2, 2))])
    s2 = collections.OrderedDict([("layer.1.weight", torch.randn(2, 2)), ("pooler.bias", torch.randn(2))])
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    torch.save(s1, os.path.join(shard_dir, names[0]))
    torch.save(s2, os.path.join(shard_dir, names[1]))
    total = sum(t.numel() * t.element_size() for s in (s1, s2) for t in s.values())
    index = {"metadata": {"total_size": total},
             "weight_map": {**{k: names[0] for k in s1}, **{k: names[1] for k in s2}}}
    with open(os.path.join(shard_dir, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    with open(os.path.join(shard_dir, "expected.json"), "w") as f:
        json.dump(expected(collections.OrderedDict(list(s1.items()) + list(s2.items()))), f, indent=1)

    write_tiny_bert_legacy_format()

    print("wrote", OUT, "and", os.path.join(MODELS, "tiny-bert-legacy-format"))


if __name__ == "__main__":
    main()
