"""Generate the tiny BERT checkpoint fixtures and expected outputs for the C# tests.

    /usr/bin/python3 tests/reference/make_model_fixtures.py        (needs: apt-get install python3-torch)

Writes tests/BertHost.Tests/Fixtures/models/ (deterministic: running it twice gives byte-identical files), then
reloads every written file, recomputes the outputs and checks them against expected.json, and prints a summary.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import zipfile

import torch
from torch import nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models")
SOURCE_VOCAB = os.environ.get("BERT_SOURCE_VOCAB",
                              os.path.abspath(os.path.join(REPO, "..", "shared", "models", "bert-base-uncased",
                                                           "vocab.txt")))
if not os.path.exists(SOURCE_VOCAB):
    SOURCE_VOCAB = "/work/shared/models/bert-base-uncased/vocab.txt"

SEED = 20240601
SIG = 7  # significant digits kept in expected.json

# --------------------------------------------------------------------------------------------------------------------
# vocab
# --------------------------------------------------------------------------------------------------------------------
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = [".", ",", "!", "?", "'", "-", '"', "(", ")", ":", ";"]
PIECES = ["##s", "##ing", "##ed", "##ly", "##er", "##es", "##d", "##y", "##al", "##ers", "##ness", "##able", "##ion",
          "##ment", "##ful", "##est"]
# words the expected cases (and tokenizer tests) need, besides the most frequent words of the real vocab
EXTRA_WORDS = ["quick", "brown", "fox", "dog", "cat", "sat", "mat", "happy", "today", "happens", "week", "store",
               "bought", "jumped", "lazy", "hello", "world", "play"]
N_FREQUENT = 320


def build_vocab():
    with open(SOURCE_VOCAB, "r", encoding="utf-8") as f:
        real = [line.rstrip("\n") for line in f]
    real_set = set(real)
    vocab = list(SPECIALS) + list(PUNCT) + [str(d) for d in range(10)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for p in PIECES:
        assert p in real_set, p
        vocab.append(p)
    seen = set(vocab)
    taken = 0
    for tok in real[real.index("the"):]:  # real vocab: the most frequent words start at "the" (id 1996)
        if taken >= N_FREQUENT:
            break
        word = tok[2:] if tok.startswith("##") else tok
        if not (word.isascii() and word.isalpha()) or tok in seen:
            continue
        vocab.append(tok)
        seen.add(tok)
        taken += 1
    for w in EXTRA_WORDS:
        assert w in real_set, w
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    assert len(vocab) == len(set(vocab))
    return vocab


# --------------------------------------------------------------------------------------------------------------------
# config and weights
# --------------------------------------------------------------------------------------------------------------------
def config_dict(vocab_size, architectures=("BertModel",), extra=None):
    d = {
        "architectures": list(architectures),
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }
    if extra:
        d.update(extra)
    return dict(sorted(d.items()))


def randomize_(module: nn.Module, gen: torch.Generator) -> None:
    """std-0.2 normal weights (10x HF's 0.02), random biases, LayerNorm weight ~ 1 +- 0.1, in name order."""
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            if "LayerNorm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "LayerNorm" in name or name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def round_trip(sd, dtype):
    return {k: v.to(dtype).to(torch.float32) for k, v in sd.items()}


# --------------------------------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------------------------------
TEXT_SINGLE = "the old man went to the city with his dog"
TEXT_PAIR = ("where did the man go", "he went to the city")
TEXTS_BATCH = ["the dog is very happy today", "she said no", "we will see what happens in the city next week"]


def tokenize_words(text, ids):
    """Whitespace split; every word is a whole token of the tiny vocab, so this is what WordPiece gives too."""
    toks = text.split()
    for t in toks:
        assert t in ids, f"{t!r} not a whole token of the tiny vocab"
    return toks


def encode_single(text, ids):
    toks = ["[CLS]"] + tokenize_words(text, ids) + ["[SEP]"]
    return toks, [ids[t] for t in toks], [0] * len(toks)


def encode_pair(a, b, ids):
    ta, tb = tokenize_words(a, ids), tokenize_words(b, ids)
    toks = ["[CLS]"] + ta + ["[SEP]"] + tb + ["[SEP]"]
    return toks, [ids[t] for t in toks], [0] * (len(ta) + 2) + [1] * (len(tb) + 1)


def rnd(x):
    """Nested lists of floats rounded to SIG significant digits."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).tolist()
    if isinstance(x, list):
        return [rnd(v) for v in x]
    return float(f"{x:.{SIG}g}")


def run(model, input_ids, token_type_ids, attention_mask):
    with torch.no_grad():
        return model(torch.tensor(input_ids), torch.tensor(attention_mask), torch.tensor(token_type_ids))


def f64_model(config, sd):
    m = ref.BertModel(config, add_pooling_layer=any(k.startswith("pooler.") for k in sd))
    m.load_state_dict({k: v.to(torch.float64) for k, v in sd.items()}, strict=True)
    return m.double().eval()


def f32_model(config, sd):
    m = ref.BertModel(config, add_pooling_layer=any(k.startswith("pooler.") for k in sd))
    m.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True)
    return m.float().eval()


def case_record(model, input_ids, token_type_ids, attention_mask, hidden_states=False, extra=None):
    out = run(model, input_ids, token_type_ids, attention_mask)
    rec = dict(extra or {})
    rec.update({"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
                "last_hidden_state": rnd(out["last_hidden_state"]), "pooler_output": rnd(out["pooler_output"])})
    if hidden_states:
        rec["hidden_states"] = [rnd(h) for h in out["hidden_states"]]
    return rec, out


# --------------------------------------------------------------------------------------------------------------------
# writing helpers
# --------------------------------------------------------------------------------------------------------------------
def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path, obj, indent=2):
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_folder_meta(folder, vocab, cfg):
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "config.json"), cfg)
    write_text(os.path.join(folder, "vocab.txt"), "".join(t + "\n" for t in vocab))
    write_json(os.path.join(folder, "tokenizer_config.json"), {"do_lower_case": True})


def torch_save_file_object(obj, path):
    """torch.save through a file object: the zip entries are named archive/..., not <file stem>/..."""
    with open(path, "wb") as f:
        torch.save(obj, f)


# --------------------------------------------------------------------------------------------------------------------
# sanity checks of the hand-written pieces against torch's own implementations
# --------------------------------------------------------------------------------------------------------------------
def sanity_checks(config, sd, gen):
    res = {}
    x = torch.randn(3, 7, 32, generator=gen, dtype=torch.float64) * 3 + 1
    ln = ref.LayerNorm(32, 1e-12).double()
    with torch.no_grad():
        ln.weight.copy_(torch.randn(32, generator=gen, dtype=torch.float64))
        ln.bias.copy_(torch.randn(32, generator=gen, dtype=torch.float64))
        res["layernorm_vs_F.layer_norm"] = (ln(x) - F.layer_norm(x, (32,), ln.weight, ln.bias, 1e-12)).abs().max().item()
    res["gelu_vs_F.gelu"] = (ref.gelu_erf(x) - F.gelu(x)).abs().max().item()
    res["gelu_tanh_vs_F.gelu_tanh"] = (ref.gelu_tanh(x) - F.gelu(x, approximate="tanh")).abs().max().item()

    # one BERT layer == nn.TransformerEncoderLayer (post-LN, gelu) with the same weights
    model = f64_model(config, sd)
    layer = model.encoder.layer[0]
    tel = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", layer_norm_eps=1e-12,
                                     batch_first=True).double().eval()
    a = layer.attention
    with torch.no_grad():
        sa = getattr(a, "self")
        tel.self_attn.in_proj_weight.copy_(torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]))
        tel.self_attn.in_proj_bias.copy_(torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]))
        tel.self_attn.out_proj.weight.copy_(a.output.dense.weight)
        tel.self_attn.out_proj.bias.copy_(a.output.dense.bias)
        tel.norm1.weight.copy_(a.output.LayerNorm.weight)
        tel.norm1.bias.copy_(a.output.LayerNorm.bias)
        tel.linear1.weight.copy_(layer.intermediate.dense.weight)
        tel.linear1.bias.copy_(layer.intermediate.dense.bias)
        tel.linear2.weight.copy_(layer.output.dense.weight)
        tel.linear2.bias.copy_(layer.output.dense.bias)
        tel.norm2.weight.copy_(layer.output.LayerNorm.weight)
        tel.norm2.bias.copy_(layer.output.LayerNorm.bias)
        mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
        mine = layer(x, ref.extended_attention_mask(mask, torch.float64))
        theirs = tel(x, src_key_padding_mask=(mask == 0))
        keep = mask.bool()
        res["bert_layer_vs_nn.TransformerEncoderLayer(unpadded positions)"] = \
            (mine[keep] - theirs[keep]).abs().max().item()
        # the embeddings against F.embedding + F.layer_norm
        ids = torch.tensor([[2, 10, 50, 3]])
        tt = torch.tensor([[0, 0, 1, 1]])
        e = model.embeddings
        manual = F.layer_norm(F.embedding(ids, e.word_embeddings.weight) + F.embedding(tt, e.token_type_embeddings.weight)
                              + e.position_embeddings.weight[:4], (32,), e.LayerNorm.weight, e.LayerNorm.bias, 1e-12)
        res["embeddings_vs_F.embedding+F.layer_norm"] = (e(ids, tt) - manual).abs().max().item()
    for k, v in res.items():
        assert v < 1e-10, (k, v)
    return res


# --------------------------------------------------------------------------------------------------------------------
def main():
    gen = torch.Generator().manual_seed(SEED)
    vocab = build_vocab()
    ids = {t: i for i, t in enumerate(vocab)}
    V = len(vocab)
    cfg = config_dict(V)
    config = ref.BertConfig.from_dict(cfg)

    # ---- weights -------------------------------------------------------------------------------------------------
    pre = ref.BertForPreTraining(config)
    randomize_(pre, gen)  # the tied decoder weight is visited once (named_parameters de-duplicates)
    assert pre.cls.predictions.decoder.weight is pre.bert.embeddings.word_embeddings.weight
    body = {k: v.detach().clone() for k, v in pre.bert.state_dict().items()}  # plain BertModel keys, F32
    assert "embeddings.position_ids" not in body
    classifier_w = 0.2 * torch.randn(3, 32, generator=gen)
    classifier_b = 0.1 * torch.randn(3, generator=gen)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    # ---- a) tiny-bert -----------------------------------------------------------------------------------------------
    d = os.path.join(OUT, "tiny-bert")
    write_folder_meta(d, vocab, config_dict(V))
    ref.save_safetensors(body, os.path.join(d, "model.safetensors"))

    # ---- b) tiny-bert-pt (BertForPreTraining layout, torch.save zip, decoder tied) --------------------------------
    d = os.path.join(OUT, "tiny-bert-pt")
    write_folder_meta(d, vocab, config_dict(V, ["BertForPreTraining"]))
    pre_sd = pre.state_dict()  # OrderedDict; decoder.weight and word_embeddings.weight are the same tensor
    torch.save(pre_sd, os.path.join(d, "pytorch_model.bin"))  # path -> zip entries "pytorch_model/..."

    # ---- c) tiny-bert-f16 / tiny-bert-bf16 --------------------------------------------------------------------------
    for name, dt in (("tiny-bert-f16", torch.float16), ("tiny-bert-bf16", torch.bfloat16)):
        d = os.path.join(OUT, name)
        write_folder_meta(d, vocab, config_dict(V, extra={"torch_dtype": "float16" if dt == torch.float16
                                                          else "bfloat16"}))
        ref.save_safetensors({k: v.to(dt) for k, v in body.items()}, os.path.join(d, "model.safetensors"))

    # ---- d) tiny-bert-sharded ---------------------------------------------------------------------------------------
    d = os.path.join(OUT, "tiny-bert-sharded")
    write_folder_meta(d, vocab, config_dict(V))
    prefixed = {"bert." + k: v for k, v in body.items()}
    shard1 = {k: v for k, v in prefixed.items() if k.startswith(("bert.embeddings.", "bert.encoder.layer.0."))}
    shard2 = {k: v for k, v in prefixed.items() if k not in shard1}
    names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    ref.save_safetensors(shard1, os.path.join(d, names[0]))
    ref.save_safetensors(shard2, os.path.join(d, names[1]))
    weight_map = {k: names[0] for k in shard1}
    weight_map.update({k: names[1] for k in shard2})
    total = sum(v.numel() * v.element_size() for v in prefixed.values())
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})

    # ---- e) tiny-bert-legacy-names (gamma/beta + position_ids buffer; written via a file object: archive/...) -----
    d = os.path.join(OUT, "tiny-bert-legacy-names")
    write_folder_meta(d, vocab, config_dict(V))
    legacy = {}
    for k, v in body.items():
        k2 = "bert." + k
        if ".LayerNorm." in k2:
            k2 = k2.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
        legacy[k2] = v
    legacy["bert.embeddings.position_ids"] = torch.arange(64).expand((1, -1))  # as HF did: [1,64], stride (0,1)
    legacy = dict(sorted(legacy.items()))
    torch_save_file_object(legacy, os.path.join(d, "pytorch_model.bin"))

    # ---- f) tiny-bert-no-pooler (BertForTokenClassification layout) -------------------------------------------------
    d = os.path.join(OUT, "tiny-bert-no-pooler")
    labels = ["O", "B-ENT", "I-ENT"]
    write_folder_meta(d, vocab, config_dict(V, ["BertForTokenClassification"], extra={
        "id2label": {str(i): l for i, l in enumerate(labels)}, "label2id": {l: i for i, l in enumerate(labels)}}))
    np_sd = {"bert." + k: v for k, v in body.items() if not k.startswith("pooler.")}
    np_sd["classifier.weight"] = classifier_w
    np_sd["classifier.bias"] = classifier_b
    ref.save_safetensors(np_sd, os.path.join(d, "model.safetensors"))

    # ---- g) broken --------------------------------------------------------------------------------------------------
    b = os.path.join(OUT, "broken")
    d = os.path.join(b, "missing-key")
    write_folder_meta(d, vocab, config_dict(V))
    ref.save_safetensors({k: v for k, v in body.items() if k != "encoder.layer.1.output.dense.weight"},
                         os.path.join(d, "model.safetensors"))
    d = os.path.join(b, "bad-shape")  # intermediate weight stored transposed: [32,64] instead of [64,32]
    write_folder_meta(d, vocab, config_dict(V))
    bad = dict(body)
    bad["encoder.layer.0.intermediate.dense.weight"] = body["encoder.layer.0.intermediate.dense.weight"].t().contiguous()
    ref.save_safetensors(bad, os.path.join(d, "model.safetensors"))
    d = os.path.join(b, "truncated")  # intact header, data cut to half its length
    write_folder_meta(d, vocab, config_dict(V))
    with open(os.path.join(OUT, "tiny-bert", "model.safetensors"), "rb") as f:
        full = f.read()
    hlen = int.from_bytes(full[:8], "little")
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(full[: 8 + hlen + (len(full) - 8 - hlen) // 2])
    d = os.path.join(b, "no-weights")
    write_folder_meta(d, vocab, config_dict(V))
    d = os.path.join(b, "bad-config")  # valid weights and vocab, config.json not JSON
    write_folder_meta(d, vocab, config_dict(V))
    write_text(os.path.join(d, "config.json"), '{\n  "hidden_size": 32,\n  "num_hidden_layers": 2,\n  "vocab_size": ,\n')
    shutil.copyfile(os.path.join(OUT, "tiny-bert", "model.safetensors"), os.path.join(d, "model.safetensors"))

    # ---- expected outputs ---------------------------------------------------------------------------------------------
    m64 = f64_model(config, body)
    cases = {}
    toks, iid, tt = encode_single(TEXT_SINGLE, ids)
    cases["single"], single_out = case_record(m64, [iid], [tt], [[1] * len(iid)], hidden_states=True,
                                              extra={"model": "tiny-bert", "text": TEXT_SINGLE, "tokens": toks})
    toks, iid, tt = encode_pair(*TEXT_PAIR, ids)
    cases["pair"], _ = case_record(m64, [iid], [tt], [[1] * len(iid)],
                                   extra={"model": "tiny-bert", "text": TEXT_PAIR[0], "text_pair": TEXT_PAIR[1],
                                          "tokens": toks})
    enc = [encode_single(t, ids) for t in TEXTS_BATCH]
    T = max(len(e[1]) for e in enc)
    b_ids = [e[1] + [0] * (T - len(e[1])) for e in enc]
    b_tt = [[0] * T for _ in enc]
    b_mask = [[1] * len(e[1]) + [0] * (T - len(e[1])) for e in enc]
    rec, bout = case_record(m64, b_ids, b_tt, b_mask, extra={"model": "tiny-bert", "texts": TEXTS_BATCH,
                                                             "tokens": [e[0] for e in enc],
                                                             "lengths": [len(e[1]) for e in enc]})
    m = torch.tensor(b_mask, dtype=torch.float64)[:, :, None]
    rec["mean_pooled"] = rnd((bout["last_hidden_state"] * m).sum(1) / m.sum(1))
    rec["unpadded"] = []
    pad_diff = 0.0
    for i, e in enumerate(enc):
        r, o = case_record(m64, [e[1]], [e[2]], [[1] * len(e[1])], extra={"text": TEXTS_BATCH[i]})
        rec["unpadded"].append(r)
        n = len(e[1])
        pad_diff = max(pad_diff, (o["last_hidden_state"][0] - bout["last_hidden_state"][i, :n]).abs().max().item(),
                       (o["pooler_output"][0] - bout["pooler_output"][i]).abs().max().item())
    cases["padded_batch"] = rec
    s = cases["single"]
    for name, dt in (("single_f16", torch.float16), ("single_bf16", torch.bfloat16)):
        mm = f64_model(config, round_trip(body, dt))
        cases[name], _ = case_record(mm, s["input_ids"], s["token_type_ids"], s["attention_mask"],
                                     extra={"model": "tiny-bert-f16" if dt == torch.float16 else "tiny-bert-bf16",
                                            "text": TEXT_SINGLE, "tokens": s["tokens"]})
    logits = single_out["last_hidden_state"] @ classifier_w.double().t() + classifier_b.double()
    cases["token_classification"] = {"model": "tiny-bert-no-pooler", "text": TEXT_SINGLE, "tokens": s["tokens"],
                                     "input_ids": s["input_ids"], "token_type_ids": s["token_type_ids"],
                                     "attention_mask": s["attention_mask"], "labels": labels,
                                     "logits": rnd(logits)}

    # float32 computation vs the float64 reference, to tell the C# tests what tolerance float32 can meet
    m32 = f32_model(config, body)
    f32_diff = 0.0
    for key in ("single", "pair", "padded_batch"):
        c = cases[key]
        o32 = run(m32, c["input_ids"], c["token_type_ids"], c["attention_mask"])
        o64 = run(m64, c["input_ids"], c["token_type_ids"], c["attention_mask"])
        keep = torch.tensor(c["attention_mask"]).bool()
        f32_diff = max(f32_diff, (o32["last_hidden_state"].double() - o64["last_hidden_state"])[keep].abs().max().item(),
                       (o32["pooler_output"].double() - o64["pooler_output"]).abs().max().item())

    sanity = sanity_checks(config, body, torch.Generator().manual_seed(SEED + 1))

    expected = {
        "generator": "tests/reference/make_model_fixtures.py (reference model: tests/reference/bert_reference.py)",
        "precision": ("weights are the float32 values of each checkpoint (F16/BF16 ones upcast exactly); forward "
                      "computed in float64, eval mode, then rounded to %d significant digits" % SIG),
        "float32_max_abs_diff_vs_float64": float(f"{f32_diff:.3g}"),
        "padding_max_abs_diff": float(f"{pad_diff:.3g}"),
        "config": {k: cfg[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                                       "max_position_embeddings", "type_vocab_size", "vocab_size", "layer_norm_eps")},
        "cases": cases,
    }
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")

    verify(config, vocab, pre, body, classifier_w, classifier_b)
    summary(sanity, f32_diff, pad_diff, V)


# --------------------------------------------------------------------------------------------------------------------
# verification of the written files
# --------------------------------------------------------------------------------------------------------------------
def max_diff_vs(rec, out, keep=None):
    lhs = torch.tensor(rec["last_hidden_state"], dtype=torch.float64)
    got = out["last_hidden_state"].double()
    if keep is not None:
        lhs, got = lhs[keep], got[keep]
    d = (lhs - got).abs().max().item()
    if rec.get("pooler_output") is not None and out["pooler_output"] is not None:
        d = max(d, (torch.tensor(rec["pooler_output"], dtype=torch.float64) - out["pooler_output"].double()).abs().max().item())
    return d


def verify(config, vocab, pre, body, classifier_w, classifier_b):
    with open(os.path.join(OUT, "expected.json"), "r", encoding="utf-8") as f:
        exp = json.load(f)
    cases = exp["cases"]
    tol = 5e-6  # 7 significant digits of values of magnitude < ~5

    def check(folder, case_names, dtype=torch.float64):
        model = ref.load_bert_model(os.path.join(OUT, folder), dtype=dtype)
        worst = 0.0
        for cn in case_names:
            c = cases[cn]
            out = run(model, c["input_ids"], c["token_type_ids"], c["attention_mask"])
            keep = torch.tensor(c["attention_mask"]).bool()
            worst = max(worst, max_diff_vs(c, out, keep))
            if "hidden_states" in c:
                for h_exp, h in zip(c["hidden_states"], out["hidden_states"]):
                    worst = max(worst, (torch.tensor(h_exp, dtype=torch.float64) - h.double()).abs().max().item())
            for u in c.get("unpadded", []):
                worst = max(worst, max_diff_vs(u, run(model, u["input_ids"], u["token_type_ids"], u["attention_mask"])))
        return worst

    results = {}
    body_cases = ["single", "pair", "padded_batch"]
    for folder in ("tiny-bert", "tiny-bert-pt", "tiny-bert-sharded", "tiny-bert-legacy-names"):
        results[folder] = check(folder, body_cases)
        results[folder + " (float32 compute)"] = check(folder, body_cases, torch.float32)
    results["tiny-bert-f16"] = check("tiny-bert-f16", ["single_f16"])
    results["tiny-bert-bf16"] = check("tiny-bert-bf16", ["single_bf16"])
    results["tiny-bert-f16 (float32 compute)"] = check("tiny-bert-f16", ["single_f16"], torch.float32)
    results["tiny-bert-bf16 (float32 compute)"] = check("tiny-bert-bf16", ["single_bf16"], torch.float32)
    for folder, t in results.items():
        limit = tol if "float32" not in folder else 1e-4
        assert t < limit, (folder, t)

    # f16 / bf16 must actually differ from the f32 outputs (otherwise the case proves nothing)
    s = torch.tensor(cases["single"]["last_hidden_state"])
    for cn in ("single_f16", "single_bf16"):
        d = (torch.tensor(cases[cn]["last_hidden_state"]) - s).abs().max().item()
        assert d > 1e-4, (cn, d)
        results[f"{cn} differs from single by"] = d

    # no-pooler: body without pooler + classifier logits
    raw = ref.read_checkpoint_folder(os.path.join(OUT, "tiny-bert-no-pooler"))
    assert not any(k.startswith(("pooler.", "bert.pooler.")) for k in raw)
    assert list(raw["classifier.weight"].shape) == [3, 32] and list(raw["classifier.bias"].shape) == [3]
    m = ref.load_bert_model(os.path.join(OUT, "tiny-bert-no-pooler"), torch.float64)
    assert m.pooler is None
    c = cases["token_classification"]
    out = run(m, c["input_ids"], c["token_type_ids"], c["attention_mask"])
    lg = out["last_hidden_state"] @ raw["classifier.weight"].double().t() + raw["classifier.bias"].double()
    results["tiny-bert-no-pooler logits"] = (lg - torch.tensor(c["logits"], dtype=torch.float64)).abs().max().item()
    assert results["tiny-bert-no-pooler logits"] < tol

    # tiny-bert-pt: tied storage, zip layout, cls keys, same body as tiny-bert
    p = os.path.join(OUT, "tiny-bert-pt", "pytorch_model.bin")
    pt = torch.load(p, map_location="cpu")
    assert pt["cls.predictions.decoder.weight"].data_ptr() == pt["bert.embeddings.word_embeddings.weight"].data_ptr()
    names = zipfile.ZipFile(p).namelist()
    n_storages = sum(1 for n in names if "/data/" in n)
    n_tensors = len(pt)
    assert n_storages == n_tensors - 1, (n_storages, n_tensors)
    for k, v in body.items():
        assert torch.equal(pt["bert." + k], v), k
    # the whole pretraining model reloads and runs
    pre2 = ref.BertForPreTraining(config)
    pre2.load_state_dict(pt, strict=True)
    pre2.eval()
    with torch.no_grad():
        o = pre2(torch.tensor(cases["single"]["input_ids"]))
    assert list(o["prediction_logits"].shape) == [1, len(cases["single"]["input_ids"][0]), len(vocab)]

    # legacy names: gamma/beta, position_ids int64 [1,64]
    lg_sd = torch.load(os.path.join(OUT, "tiny-bert-legacy-names", "pytorch_model.bin"), map_location="cpu")
    assert "bert.embeddings.LayerNorm.gamma" in lg_sd and "bert.embeddings.LayerNorm.weight" not in lg_sd
    pid = lg_sd["bert.embeddings.position_ids"]
    assert pid.dtype == torch.int64 and list(pid.shape) == [1, 64] and pid[0, 63].item() == 63

    # sharded: index consistent and keys prefixed
    with open(os.path.join(OUT, "tiny-bert-sharded", "model.safetensors.index.json")) as f:
        idx = json.load(f)
    sh = ref.read_checkpoint_folder(os.path.join(OUT, "tiny-bert-sharded"))
    assert set(sh) == set(idx["weight_map"]) and all(k.startswith("bert.") for k in sh)
    assert idx["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in sh.values())

    # safetensors header layout: 8-byte aligned, sorted offsets, contiguous, covers the whole data
    for root, _, files in os.walk(OUT):
        for fn in files:
            if fn.endswith(".safetensors") and "truncated" not in root:
                with open(os.path.join(root, fn), "rb") as f:
                    raw_b = f.read()
                n = int.from_bytes(raw_b[:8], "little")
                assert n % 8 == 0
                hdr = json.loads(raw_b[8:8 + n])
                assert hdr.pop("__metadata__") == {"format": "pt"}
                spans = [hdr[k]["data_offsets"] for k in sorted(hdr)]
                assert spans[0][0] == 0 and spans[-1][1] == len(raw_b) - 8 - n
                assert all(a[1] == b_[0] for a, b_ in zip(spans, spans[1:]))

    # broken folders must fail to load
    for name in ("missing-key", "bad-shape", "truncated", "no-weights", "bad-config"):
        try:
            ref.load_bert_model(os.path.join(OUT, "broken", name))
        except Exception as e:  # noqa: BLE001
            results[f"broken/{name} fails with"] = f"{type(e).__name__}: {str(e).splitlines()[0][:110]}"
        else:
            raise AssertionError(f"broken/{name} loaded")

    print("verification (max |diff| vs expected.json unless noted):")
    for k, v in results.items():
        print(f"  {k:45s} {v if isinstance(v, str) else f'{v:.3g}'}")


def summary(sanity, f32_diff, pad_diff, V):
    print(f"vocab size {V}")
    print("sanity checks (hand-written vs torch implementations, float64):")
    for k, v in sanity.items():
        print(f"  {k:62s} {v:.3g}")
    print(f"float32 compute vs float64 reference: max |diff| {f32_diff:.3g}")
    print(f"padded batch vs each sequence alone (unpadded positions): max |diff| {pad_diff:.3g}")
    total = 0
    print("files:")
    for root, _, files in sorted(os.walk(OUT)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            size = os.path.getsize(p)
            total += size
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()[:12]
            print(f"  {os.path.relpath(p, OUT):60s} {size:8d}  {h}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
