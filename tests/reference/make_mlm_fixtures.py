"""Expected masked-LM outputs for the tiny BertForPreTraining fixture (tiny-bert-pt), for the C# MLM head tests.

    /usr/bin/python3 tests/reference/make_mlm_fixtures.py        (needs: apt-get install python3-torch)

Reads tests/BertHost.Tests/Fixtures/models/tiny-bert-pt (written by make_model_fixtures.py: torch.save state dict of
BertForPreTraining, cls.predictions.decoder.weight tied to the word embeddings) with the independent plain-PyTorch
reference (bert_reference.py: BertLMPredictionHead = dense -> gelu -> LayerNorm -> decoder (tied) + bias), and writes
Fixtures/models/tiny-bert-pt.mlm.expected.json: for each case the input ids, the prediction logits at every position,
and what transformers' fill-mask pipeline reports (softmax over the vocabulary at each [MASK], top 5: token, score,
token_str, sequence).
"""
from __future__ import annotations

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402
from make_model_fixtures import rnd  # noqa: E402  (same rounding as the body fixtures)

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FOLDER = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models", "tiny-bert-pt")
OUT = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models", "tiny-bert-pt.mlm.expected.json")
TOP_K = 5

CASES = {
    "one_mask": "the old man went to the [MASK] with his dog",
    "two_masks": "[MASK] dog is very [MASK] today",
    "no_special_inside": "she said no",
}


def decode(vocab, ids, skip_special):
    """WordPiece decoding as the Rust decoder does it for these whole-word cases: tokens joined by spaces."""
    specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    toks = [vocab[i] for i in ids if not (skip_special and vocab[i] in specials)]
    out = ""
    for t in toks:
        out += t[2:] if t.startswith("##") else (" " + t if out else t)
    return out


def main():
    config = ref.BertConfig.from_json_file(os.path.join(FOLDER, "config.json"))
    with open(os.path.join(FOLDER, "vocab.txt"), encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    ids = {t: i for i, t in enumerate(vocab)}
    sd = torch.load(os.path.join(FOLDER, "pytorch_model.bin"), map_location="cpu")
    assert sd["cls.predictions.decoder.weight"].data_ptr() == sd["bert.embeddings.word_embeddings.weight"].data_ptr()
    model = ref.BertForPreTraining(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    model.eval()

    cases = {}
    for name, text in CASES.items():
        toks = ["[CLS]"] + text.split() + ["[SEP]"]
        input_ids = [ids[t] for t in toks]
        with torch.no_grad():
            out = model(torch.tensor([input_ids]), torch.ones(1, len(input_ids), dtype=torch.long),
                        torch.zeros(1, len(input_ids), dtype=torch.long))
        logits = out["prediction_logits"][0]
        masks = [i for i, t in enumerate(input_ids) if t == ids["[MASK]"]]
        fill = []
        for m in masks:
            probs = logits[m].to(torch.float64).softmax(-1)
            values, indices = probs.topk(TOP_K)
            row = []
            for v, t in zip(values.tolist(), indices.tolist()):
                filled = list(input_ids)
                filled[m] = t
                row.append({"score": rnd(v), "token": t, "token_str": vocab[t],
                            "sequence": decode(vocab, filled, skip_special=len(masks) == 1)})
            fill.append(row)
        cases[name] = {"text": text, "input_ids": input_ids, "logits": rnd(logits), "fill_mask": fill}

    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"source": "tests/reference/make_mlm_fixtures.py", "model": "tiny-bert-pt", "top_k": TOP_K,
                   "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
