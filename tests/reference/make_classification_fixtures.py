"""Generate the BertForSequenceClassification fixtures for the classification head plugin tests.

    /usr/bin/python3 tests/reference/make_classification_fixtures.py        (needs: apt-get install python3-torch)

Reads Fixtures/models/tiny-bert/ (written by make_model_fixtures.py) and writes, deterministically:
  Fixtures/models/tiny-bert-seqcls/        config.json (BertForSequenceClassification, id2label negative/neutral/positive),
                                           model.safetensors = tiny-bert's weights EXACTLY under bert.* + a random
                                           classifier.weight [3,32] / classifier.bias [3]; vocab.txt, tokenizer_config.json
  Fixtures/models/tiny-bert-seqcls-other/  the same layout, but other bert.* weights (fine-tuned on "another body")
  Fixtures/models/tiny-bert-seqcls.expected.json
                                           input ids and softmax(classifier(pooler_output)) in float64 for a few texts
                                           and pairs, as transformers' BertForSequenceClassification computes in eval mode
It then reloads the written folder and checks the numbers again.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MODELS = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models")
BASE = os.path.join(MODELS, "tiny-bert")
SEED = 20240602
SIG = 7
LABELS = ["negative", "neutral", "positive"]

SINGLES = ["the dog is very happy today", "she said no", "we will see what happens in the city next week"]
PAIRS = [("where did the man go", "he went to the city"), ("the cat sat", "the dog sat on the mat")]


def rnd(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).tolist()
    if isinstance(x, list):
        return [rnd(v) for v in x]
    return float(f"{x:.{SIG}g}")


def words(text, ids):
    toks = text.split()
    for t in toks:
        assert t in ids, f"{t!r} not a whole token of the tiny vocab"
    return toks


def encode(text, pair, ids):
    a = words(text, ids)
    toks = ["[CLS]"] + a + ["[SEP]"]
    types = [0] * len(toks)
    if pair is not None:
        b = words(pair, ids)
        toks += b + ["[SEP]"]
        types += [1] * (len(b) + 1)
    return [ids[t] for t in toks], types


def seqcls_config():
    with open(os.path.join(BASE, "config.json"), "r", encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["id2label"] = {str(i): l for i, l in enumerate(LABELS)}
    cfg["label2id"] = {l: i for i, l in enumerate(LABELS)}
    cfg["problem_type"] = "single_label_classification"
    return dict(sorted(cfg.items()))


def write_folder(name, body_sd, classifier):
    folder = os.path.join(MODELS, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(seqcls_config(), indent=2) + "\n")
    for extra in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(BASE, extra), os.path.join(folder, extra))
    tensors = {"bert." + k: v for k, v in body_sd.items()}
    tensors.update({"classifier." + k: v for k, v in classifier.items()})
    ref.save_safetensors(tensors, os.path.join(folder, "model.safetensors"))
    return folder


def probabilities(body_sd, classifier, cfg, input_ids, types):
    model = ref.BertModel(cfg, add_pooling_layer=True)
    model.load_state_dict({k: v.to(torch.float64) for k, v in body_sd.items()}, strict=True)
    model = model.double().eval()
    with torch.no_grad():
        out = model(torch.tensor([input_ids]), torch.ones(1, len(input_ids), dtype=torch.long), torch.tensor([types]))
        logits = out["pooler_output"] @ classifier["weight"].double().T + classifier["bias"].double()
    return logits[0], torch.softmax(logits[0], dim=-1)


def main():
    cfg = ref.BertConfig.from_json_file(os.path.join(BASE, "config.json"))
    body = ref.load_safetensors(os.path.join(BASE, "model.safetensors"))
    assert not any(k.startswith("bert.") for k in body), "tiny-bert stores plain BertModel keys"
    with open(os.path.join(BASE, "vocab.txt"), "r", encoding="utf-8") as f:
        ids = {t.rstrip("\n"): i for i, t in enumerate(f)}

    gen = torch.Generator().manual_seed(SEED)
    # larger than initializer_range so the probabilities are far from uniform
    classifier = {"weight": torch.randn(len(LABELS), cfg.hidden_size, generator=gen) * 0.5,
                  "bias": torch.randn(len(LABELS), generator=gen) * 0.1}
    folder = write_folder("tiny-bert-seqcls", body, classifier)

    other_body = {k: (v + 0.01 * torch.randn(v.shape, generator=gen)) for k, v in body.items()}
    other_classifier = {"weight": torch.randn(len(LABELS), cfg.hidden_size, generator=gen) * 0.5,
                        "bias": torch.zeros(len(LABELS))}
    write_folder("tiny-bert-seqcls-other", other_body, other_classifier)

    cases = []
    for text, pair in [(t, None) for t in SINGLES] + list(PAIRS):
        input_ids, types = encode(text, pair, ids)
        logits, probs = probabilities(body, classifier, cfg, input_ids, types)
        case = {"text": text}
        if pair is not None:
            case["text_pair"] = pair
        case.update({"input_ids": input_ids, "token_type_ids": types, "logits": rnd(logits),
                     "probabilities": rnd(probs), "label": LABELS[int(torch.argmax(probs))]})
        cases.append(case)
    expected = {"model": "tiny-bert-seqcls", "labels": LABELS, "cases": cases}
    with open(os.path.join(MODELS, "tiny-bert-seqcls.expected.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(expected, indent=2) + "\n")

    # check: reload the written folder the way an HF loader would
    sd = ref.read_checkpoint_folder(folder)
    reloaded_body = ref.to_bert_model_keys(sd)
    assert set(reloaded_body) == set(body) and all(torch.equal(reloaded_body[k], body[k]) for k in body)
    reloaded_cls = {"weight": sd["classifier.weight"], "bias": sd["classifier.bias"]}
    for case in cases:
        _, probs = probabilities(reloaded_body, reloaded_cls, cfg, case["input_ids"], case["token_type_ids"])
        assert max(abs(a - b) for a, b in zip(probs.tolist(), case["probabilities"])) < 1e-6
    print(f"wrote {folder} (+ -other) and {len(cases)} cases:")
    for case in cases:
        print(f"  {case['label']:>8}  {case['probabilities']}  {case['text']!r} {case.get('text_pair', '')!r}")


if __name__ == "__main__":
    main()
