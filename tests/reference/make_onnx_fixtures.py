"""Generate the ONNX export fixtures for `berthost import-onnx`.

    /usr/bin/python3 tests/reference/make_onnx_fixtures.py     (needs: apt-get install python3-torch python3-onnx)

Builds tiny random BERT bodies with bert_reference.py's modules, switched to torch's own nn.LayerNorm and GELU so the
graphs are what torch.onnx.export makes of Hugging Face's BertModel (the real MiniLM / ArcticXs packages were exported
the same way), and exports them as the packages were: constant folding on (each Linear weight becomes an unnamed,
transposed initializer feeding a MatMul), dynamic batch and sequence axes, opset 13 with a pooler and opset 11 without.
Writes tests/BertHost.Tests/Fixtures/onnx/:

    tiny-bert-pooler-opset13.onnx   2 layers, hidden 16, 4 heads, FFN 32, 32 positions, eps 1e-12, pooler;
                                    initializers named as BertModel's keys (embeddings.*, encoder.*, pooler.*)
    tiny-bert-opset11.onnx          3 layers, hidden 16, 2 heads, FFN 24, 40 positions, 3 token types, eps 1e-5,
                                    no pooler; names prefixed bert. (as in an export of a task model's body)
    tiny-mlp.onnx                   a two-layer perceptron: an ONNX graph that is not a BERT export
    expected.json                   the config each BERT graph was built with (what the importer must infer)

The vocabulary is Fixtures/models/tiny-bert/vocab.txt (405 tokens). The C# tests compare ONNX Runtime on these graphs
with the host's body loaded from the imported folder. Running the script again rewrites byte-identical files.
"""
from __future__ import annotations

import io
import json
import os
import sys

import onnx
import torch
from torch import nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402
from make_model_fixtures import randomize_  # noqa: E402  (weights far from their initial values)

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "onnx")
VOCAB = os.path.join(FIXTURES, "models", "tiny-bert", "vocab.txt")
SEED = 20251202

# torch's modules, as in transformers, instead of the reference's hand-written ones: the export then has the same
# operator pattern as a Hugging Face export (ReduceMean/Sub/Pow/Add(eps)/Sqrt/Div for LayerNorm, Div/Erf/Add/Mul for GELU).
ref.LayerNorm = lambda hidden, eps: nn.LayerNorm(hidden, eps=eps)
ref.ACT["gelu"] = F.gelu

CASES = {
    "tiny-bert-pooler-opset13": dict(opset=13, pooler=True, prefix="", config=dict(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32, max_position_embeddings=32,
        type_vocab_size=2, layer_norm_eps=1e-12)),
    "tiny-bert-opset11": dict(opset=11, pooler=False, prefix="bert", config=dict(
        hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24, max_position_embeddings=40,
        type_vocab_size=3, layer_norm_eps=1e-5)),
}


class Exported(nn.Module):
    """BertModel with the export's inputs and outputs: (last_hidden_state[, pooler_output]). With prefix "bert" the
    body is a submodule, so its initializers are named bert.embeddings.* as in an export of a task model."""

    def __init__(self, model: ref.BertModel, prefix: str):
        super().__init__()
        self.prefix = prefix
        if prefix:
            setattr(self, prefix, model)
        else:  # the body's own modules at the top: initializers named embeddings.*, encoder.*, pooler.*
            self.embeddings, self.encoder, self.pooler = model.embeddings, model.encoder, model.pooler
        self.body = [model]  # a plain list: not registered again as a submodule

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.body[0](input_ids, attention_mask, token_type_ids)
        if out["pooler_output"] is None:
            return out["last_hidden_state"]
        return out["last_hidden_state"], out["pooler_output"]


def export(module: nn.Module, args, path: str, opset: int, inputs, outputs, dynamic) -> None:
    buffer = io.BytesIO()
    torch.onnx.export(module, args, buffer, opset_version=opset, do_constant_folding=True, input_names=inputs,
                      output_names=outputs, dynamic_axes=dynamic)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def bert_case(name: str, case: dict, vocab_size: int, gen: torch.Generator) -> dict:
    cfg = ref.BertConfig(vocab_size=vocab_size, **case["config"])
    model = ref.BertModel(cfg, add_pooling_layer=case["pooler"])
    # Hugging Face exports of that era keep position_ids as a persistent buffer: an int64 initializer to skip.
    model.embeddings.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings).expand((1, -1)))
    randomize_(model, gen)
    model.eval()
    ids = torch.randint(0, vocab_size, (2, 7), generator=gen)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    outputs = ["last_hidden_state"] + (["pooler_output"] if case["pooler"] else [])
    dynamic = {n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids"]}
    dynamic["last_hidden_state"] = {0: "batch", 1: "sequence"}
    if case["pooler"]:
        dynamic["pooler_output"] = {0: "batch"}
    export(Exported(model, case["prefix"]), (ids, mask, types), os.path.join(OUT, f"{name}.onnx"), case["opset"],
           ["input_ids", "attention_mask", "token_type_ids"], outputs, dynamic)
    return dict(sorted({**case["config"], "vocab_size": vocab_size, "hidden_act": "gelu", "pooler": case["pooler"],
                        "opset": case["opset"], "prefix": case["prefix"]}.items()))


def main() -> None:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    os.makedirs(OUT, exist_ok=True)
    with open(VOCAB, "r", encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    expected = {name: bert_case(name, case, vocab_size, gen) for name, case in CASES.items()}

    mlp = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    randomize_(mlp, gen)
    export(mlp.eval(), (torch.zeros(1, 8),), os.path.join(OUT, "tiny-mlp.onnx"), 13, ["x"], ["y"], None)

    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(expected, indent=2) + "\n")
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name)):,} bytes")


if __name__ == "__main__":
    main()
