"""Independent plain-torch reference of Hugging Face ``BertModel`` semantics.

Written from the behaviour of transformers' ``modeling_bert.py`` (eval mode, absolute position embeddings,
post-LayerNorm encoder, exact-erf GELU, additive attention mask ``(1 - mask) * finfo(dtype).min``).
Parameter names equal the Hugging Face checkpoint keys, so ``state_dict()`` of :class:`BertModel` is the plain
``BertModel`` layout and that of :class:`BertForPreTraining` is the ``bert.``-prefixed layout plus ``cls.*``.

Also contains a tiny safetensors reader/writer and a checkpoint-folder loader used to verify the fixtures.
Needs only torch (tested with Debian's python3-torch 1.13) and numpy; no transformers / safetensors packages.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn


# --------------------------------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        known = {k for k in cls.__dataclass_fields__ if k != "extra"}
        return cls(**{k: v for k, v in d.items() if k in known}, extra={k: v for k, v in d.items() if k not in known})

    @classmethod
    def from_json_file(cls, path: str) -> "BertConfig":
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


# --------------------------------------------------------------------------------------------------------------------
# elementary functions, written out by hand (checked against torch.nn.functional in make_model_fixtures.py)
# --------------------------------------------------------------------------------------------------------------------
def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """HF ``"gelu"``: the exact form 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """HF ``"gelu_new"`` / ``"gelu_pytorch_tanh"`` (not used by the fixtures, here for completeness)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {"gelu": gelu_erf, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": torch.relu, "tanh": torch.tanh}


class LayerNorm(nn.Module):
    """Same parameters as ``nn.LayerNorm`` (``weight``, ``bias``); biased variance over the last dim."""

    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# --------------------------------------------------------------------------------------------------------------------
# BertModel
# --------------------------------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        # HF keeps position_ids as a (nowadays non-persistent) buffer; it is not part of state_dict here.
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids=None, position_ids=None):
        seq_len = input_ids.shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_len]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        if c.hidden_size % c.num_attention_heads != 0:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def _split(self, x):  # [B,T,H] -> [B,heads,T,head_dim]
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, hidden, extended_mask):
        q, k, v = self._split(self.query(hidden)), self._split(self.key(hidden)), self._split(self.value(hidden))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if extended_mask is not None:
            scores = scores + extended_mask  # [B,1,1,T] broadcast over heads and query positions
        probs = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[0], ctx.shape[1], -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        # "self" is a Python keyword only as a parameter name; as an attribute it works (HF does the same)
        setattr(self, "self", BertSelfAttention(c))
        self.output = BertSelfOutput(c)

    def forward(self, hidden, extended_mask):
        return self.output(getattr(self, "self")(hidden, extended_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACT[c.hidden_act]

    def forward(self, hidden):
        return self.act(self.dense(hidden))


class BertOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = LayerNorm(c.hidden_size, c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, hidden, extended_mask):
        attn = self.attention(hidden, extended_mask)
        return self.output(self.intermediate(attn), attn)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, hidden, extended_mask):
        all_hidden = [hidden]
        for layer in self.layer:
            hidden = layer(hidden, extended_mask)
            all_hidden.append(hidden)
        return hidden, all_hidden


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


def extended_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B,T] of 1 (attend) / 0 (padding) -> additive [B,1,1,T]: 0 where attended, finfo(dtype).min where masked."""
    m = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - m) * torch.finfo(dtype).min


class BertModel(nn.Module):
    def __init__(self, c: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        emb = self.embeddings(input_ids, token_type_ids)
        ext = extended_attention_mask(attention_mask, emb.dtype)
        last, all_hidden = self.encoder(emb, ext)
        pooled = self.pooler(last) if self.pooler is not None else None
        return {"last_hidden_state": last, "pooler_output": pooled, "hidden_states": all_hidden}


# --------------------------------------------------------------------------------------------------------------------
# BertForPreTraining (only for its cls.* keys; decoder weight tied to the word embeddings)
# --------------------------------------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.act = ACT[c.hidden_act]
        self.LayerNorm = LayerNorm(c.hidden_size, c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class BertPreTrainingHeads(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)
        self.seq_relationship = nn.Linear(c.hidden_size, 2)


class BertForPreTraining(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.bert = BertModel(c)
        self.cls = BertPreTrainingHeads(c)
        self.tie_weights()

    def tie_weights(self):
        # the SAME Parameter object, so state_dict()/torch.save store one storage for both keys
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        out = self.bert(input_ids, attention_mask, token_type_ids)
        out["prediction_logits"] = self.cls.predictions(out["last_hidden_state"])
        out["seq_relationship_logits"] = self.cls.seq_relationship(out["pooler_output"])
        return out


# --------------------------------------------------------------------------------------------------------------------
# safetensors (format written out by hand: u64 LE header length, JSON header, raw little-endian data)
# --------------------------------------------------------------------------------------------------------------------
_ST_DTYPES = {  # safetensors name -> (torch dtype, bytes per element)
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
_ST_NAMES = {v[0]: k for k, v in _ST_DTYPES.items()}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def save_safetensors(tensors: Dict[str, torch.Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    names = sorted(tensors)
    header: Dict[str, object] = {"__metadata__": dict(metadata if metadata is not None else {"format": "pt"})}
    blobs, offset = [], 0
    for n in names:
        b = tensor_bytes(tensors[n])
        header[n] = {"dtype": _ST_NAMES[tensors[n].dtype], "shape": list(tensors[n].shape),
                     "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, size = _ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end > len(data) or end - begin != count * size:
            raise ValueError(f"{path}: tensor {name} data_offsets {begin}..{end} do not fit (data {len(data)} bytes)")
        buf = bytearray(data[begin:end])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(buf, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


# --------------------------------------------------------------------------------------------------------------------
# Hugging Face folder loading (what the C# loader is expected to do too)
# --------------------------------------------------------------------------------------------------------------------
def read_checkpoint_folder(folder: str) -> Dict[str, torch.Tensor]:
    """Raw tensors of model.safetensors | model.safetensors.index.json (sharded) | pytorch_model.bin."""
    st, idx, pt = (os.path.join(folder, n) for n in ("model.safetensors", "model.safetensors.index.json",
                                                     "pytorch_model.bin"))
    if os.path.exists(st):
        return load_safetensors(st)
    if os.path.exists(idx):
        with open(idx, "r", encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        out: Dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            for k, v in load_safetensors(os.path.join(folder, shard)).items():
                if weight_map.get(k) != shard:
                    raise ValueError(f"{shard}: tensor {k} is not mapped to this shard in the index")
                out[k] = v
        missing = set(weight_map) - set(out)
        if missing:
            raise ValueError(f"index names tensors absent from the shards: {sorted(missing)}")
        return out
    if os.path.exists(pt):
        return dict(torch.load(pt, map_location="cpu"))
    raise FileNotFoundError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def to_bert_model_keys(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """HF key mapping: strip 'bert.', rename LayerNorm gamma/beta, drop position_ids buffers and task heads."""
    out = {}
    for k, v in sd.items():
        if k.startswith("bert."):
            k = k[len("bert."):]
        elif k.startswith(("cls.", "classifier.", "qa_outputs.")):
            continue
        if k.endswith("position_ids") or k.endswith("token_type_ids"):
            continue
        if k.endswith(".gamma"):
            k = k[: -len(".gamma")] + ".weight"
        elif k.endswith(".beta"):
            k = k[: -len(".beta")] + ".bias"
        out[k] = v
    return out


def load_bert_model(folder: str, dtype: torch.dtype = torch.float32) -> BertModel:
    config = BertConfig.from_json_file(os.path.join(folder, "config.json"))
    sd = to_bert_model_keys(read_checkpoint_folder(folder))
    model = BertModel(config, add_pooling_layer=any(k.startswith("pooler.") for k in sd))
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder}: missing {missing}, unexpected {unexpected}")
    return model.to(dtype).eval()
