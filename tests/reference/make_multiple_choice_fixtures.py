"""Generate the BertForMultipleChoice fixtures for the multiple-choice head plugin tests.

    /usr/bin/python3 tests/reference/make_multiple_choice_fixtures.py        (needs: apt-get install python3-torch)

Reads Fixtures/models/tiny-bert/ (written by make_model_fixtures.py) and writes, deterministically:
  Fixtures/models/tiny-bert-mc/            config.json (BertForMultipleChoice), model.safetensors = tiny-bert's weights
                                           EXACTLY under bert.* (pooler kept) + a random classifier.weight [1,32] /
                                           classifier.bias [1]; vocab.txt, tokenizer_config.json
  Fixtures/models/tiny-bert-mc.expected.json
                                           per item (context, optional question, 2..4 choices): the input ids and token
                                           type ids of every choice, logits = classifier(pooler_output) per choice and the
                                           softmax over the item's choices in float64, as transformers'
                                           BertForMultipleChoice computes in eval mode (its logits.view(-1, num_choices)).

Each choice is the sentence pair (context, question + " " + choice), or (context, choice) without a question: the SWAG
recipe (run_swag.py), where sent1 is the context and sent2 is prepended to each ending. The words are whole tokens of
the tiny vocabulary, so whitespace splitting gives the exact WordPiece ids. The script then reloads the written folder
and checks the numbers again.
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
NAME = "tiny-bert-mc"
SEED = 20240611
SIG = 7

ITEMS = [
    {"context": "the dog sat on the mat", "choices": ["the cat is happy", "she went to the city"]},
    {"context": "he went to the store", "question": "then he",
     "choices": ["said no", "looked at the dog", "made a song", "went back home"]},
    {"context": "we will see what happens", "question": "in the city",
     "choices": ["next week", "the quick brown fox", "today"]},
    {"context": "the man looked at the river", "choices": ["the water was black", "she said no", "they played music"]},
]


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


def second_sequence(item, choice):
    return f"{item['question']} {choice}" if "question" in item else choice


def encode(context, second, ids):
    a, b = words(context, ids), words(second, ids)
    toks = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return [ids[t] for t in toks], types


def mc_config():
    with open(os.path.join(BASE, "config.json"), "r", encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["architectures"] = ["BertForMultipleChoice"]
    cfg["classifier_dropout"] = None
    return dict(sorted(cfg.items()))


def write_folder(body_sd, classifier):
    folder = os.path.join(MODELS, NAME)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(mc_config(), indent=2) + "\n")
    for extra in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(BASE, extra), os.path.join(folder, extra))
    tensors = {"bert." + k: v for k, v in body_sd.items()}
    tensors.update({"classifier." + k: v for k, v in classifier.items()})
    ref.save_safetensors(tensors, os.path.join(folder, "model.safetensors"))
    return folder


def score(body_sd, classifier, cfg, rows):
    """BertForMultipleChoice in eval mode over one item: its choices padded into one [C,T] batch, logits [C]."""
    model = ref.BertModel(cfg, add_pooling_layer=True)
    model.load_state_dict({k: v.to(torch.float64) for k, v in body_sd.items()}, strict=True)
    model = model.double().eval()
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in rows])
    types = torch.tensor([t + [0] * (width - len(t)) for _, t in rows])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    with torch.no_grad():
        pooled = model(input_ids, mask, types)["pooler_output"]                      # [C,H]
        logits = (pooled @ classifier["weight"].double().T + classifier["bias"].double()).view(-1)  # [C]
    return logits, torch.softmax(logits, dim=-1)


def main():
    cfg = ref.BertConfig.from_json_file(os.path.join(BASE, "config.json"))
    body = ref.load_safetensors(os.path.join(BASE, "model.safetensors"))
    assert not any(k.startswith("bert.") for k in body), "tiny-bert stores plain BertModel keys"
    assert "pooler.dense.weight" in body, "tiny-bert has a pooler"
    with open(os.path.join(BASE, "vocab.txt"), "r", encoding="utf-8") as f:
        ids = {t.rstrip("\n"): i for i, t in enumerate(f)}

    gen = torch.Generator().manual_seed(SEED)
    # larger than initializer_range so the probabilities are far from uniform
    classifier = {"weight": torch.randn(1, cfg.hidden_size, generator=gen) * 0.5,
                  "bias": torch.randn(1, generator=gen) * 0.1}
    folder = write_folder(body, classifier)

    cases = []
    for item in ITEMS:
        rows = [encode(item["context"], second_sequence(item, c), ids) for c in item["choices"]]
        logits, probs = score(body, classifier, cfg, rows)
        case = dict(item)
        case.update({
            "input_ids": [r[0] for r in rows], "token_type_ids": [r[1] for r in rows],
            "logits": rnd(logits), "probabilities": rnd(probs), "choice": int(torch.argmax(probs)),
        })
        case["label"] = item["choices"][case["choice"]]
        cases.append(case)
    expected = {"model": NAME, "cases": cases}
    with open(os.path.join(MODELS, f"{NAME}.expected.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(expected, indent=2) + "\n")

    # check: reload the written folder the way an HF loader would, and score each choice alone (no padding)
    sd = ref.read_checkpoint_folder(folder)
    reloaded_body = ref.to_bert_model_keys(sd)
    assert set(reloaded_body) == set(body) and all(torch.equal(reloaded_body[k], body[k]) for k in body)
    reloaded_cls = {"weight": sd["classifier.weight"], "bias": sd["classifier.bias"]}
    assert tuple(reloaded_cls["weight"].shape) == (1, cfg.hidden_size) and tuple(reloaded_cls["bias"].shape) == (1,)
    for case in cases:
        alone = torch.cat([score(reloaded_body, reloaded_cls, cfg, [(i, t)])[0]
                           for i, t in zip(case["input_ids"], case["token_type_ids"])])
        probs = torch.softmax(alone, dim=-1)
        assert max(abs(a - b) for a, b in zip(probs.tolist(), case["probabilities"])) < 1e-6
    print(f"wrote {folder} and {len(cases)} cases:")
    for case in cases:
        print(f"  choice {case['choice']}  {case['probabilities']}  {case['context']!r}")


if __name__ == "__main__":
    main()
