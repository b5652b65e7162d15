"""Generate the BertForTokenClassification fixtures for the token-classification head plugin tests.

    /usr/bin/python3 tests/reference/make_token_classification_fixtures.py        (needs: apt-get install python3-torch)

Reads Fixtures/models/tiny-bert/ (written by make_model_fixtures.py) and writes, deterministically:
  Fixtures/models/tiny-bert-tokcls/        config.json (BertForTokenClassification, id2label O, B-PER, I-PER, B-LOC, I-LOC,
                                           B-MISC, I-MISC), model.safetensors = tiny-bert's weights EXACTLY under bert.*
                                           WITHOUT the pooler (as transformers saves BertForTokenClassification,
                                           add_pooling_layer=False) + a random classifier.weight [7,32] / classifier.bias [7];
                                           vocab.txt, tokenizer_config.json
  Fixtures/models/tiny-bert-tokcls.expected.json
                                           per case: input ids, offsets, logits, and what transformers'
                                           TokenClassificationPipeline returns for aggregation_strategy none (with
                                           ignore_labels [] and the default ["O"]), simple, first, average and max.

The tokenizer here is a small re-implementation of BertTokenizerFast for plain ASCII text (lower-casing, splitting on
whitespace and punctuation, greedy longest-match WordPiece with "##" continuations, [UNK] for a word that cannot be
pieced), which is exact for the inputs used. The pipeline post-processing (gather_pre_entities, aggregate,
aggregate_word(s), group_entities) is written from transformers' pipelines/token_classification.py semantics:
  - a token is a sub-word when its string length differs from its text span (a "##" piece); [UNK] takes its text span
    as word and is never a sub-word;
  - pre-split input (is_split_into_words=True): the sentence is the words joined by " " and a token's offsets are its
    offsets inside its word plus the word's start in that sentence;
  - entity groups carry "word" = tokenizer.convert_tokens_to_string(tokens) (lower-cased, "##" glued); the C# head
    returns the original text slice [start, end) instead, also recorded here as "text".
Scores are computed in float64 (the pipeline uses float32 numpy; differences are ~1e-7).
"""
from __future__ import annotations

import json
import os
import shutil
import string
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MODELS = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models")
BASE = os.path.join(MODELS, "tiny-bert")
NAME = "tiny-bert-tokcls"
SEED = 20240611
SIG = 7
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

TEXTS = [
    "John Smith went to New York city, playing music.",
    "The quick brown fox jumped over the lazy dog at Brown University!",
    "Hello, Zzz! She bought two books in London.",
]
WORD_INPUTS = [
    ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
]
STRATEGIES = ["none", "simple", "first", "average", "max"]


def rnd(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).tolist()
    if isinstance(x, list):
        return [rnd(v) for v in x]
    return float(f"{x:.{SIG}g}")


# ---- tokenizer (BertTokenizerFast semantics for ASCII text) -------------------------------------------------------
def basic_words(text):
    """(word, start, end) after whitespace and punctuation splitting; ASCII only, so lower-casing keeps offsets."""
    assert all(ord(c) < 128 for c in text), "ASCII inputs only"
    words, start = [], None
    for i, c in enumerate(text + " "):
        if c.isspace() or c in string.punctuation:
            if start is not None:
                words.append((text[start:i].lower(), start, i))
                start = None
            if c in string.punctuation:
                words.append((c, i, i + 1))
        elif start is None:
            start = i
    return words


def wordpiece(word, start, vocab):
    """Greedy longest-match-first pieces with offsets; the whole word as [UNK] when a piece cannot be found."""
    pieces, i = [], 0
    while i < len(word):
        j = len(word)
        found = None
        while j > i:
            cand = word[i:j] if i == 0 else "##" + word[i:j]
            if cand in vocab:
                found = cand
                break
            j -= 1
        if found is None:
            return [("[UNK]", start, start + len(word))]
        pieces.append((found, start + i, start + j))
        i = j
    return pieces


def tokenize(text, vocab):
    out = []
    for w, s, _ in basic_words(text):
        out.extend(wordpiece(w, s, vocab))
    return out


def encode_text(text, vocab):
    toks = tokenize(text, vocab)
    return text, toks, [None] * len(toks)


def encode_words(words, vocab):
    """is_split_into_words: each word alone; offsets inside the word, word ids = word index."""
    sentence = " ".join(words)
    toks, word_ids, starts, pos = [], [], [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    for k, w in enumerate(words):
        for t, s, e in tokenize(w, vocab):
            toks.append((t, s, e))
            word_ids.append(k)
    return sentence, toks, word_ids, starts


# ---- pipeline post-processing -------------------------------------------------------------------------------------
def convert_tokens_to_string(tokens):
    return " ".join(tokens).replace(" ##", "").strip()


def gather_pre_entities(sentence, toks, scores, word_ids, word_starts):
    pre = []
    for k, (tok, s, e) in enumerate(toks):
        if word_ids[k] is not None:
            s += word_starts[word_ids[k]]
            e += word_starts[word_ids[k]]
        word_ref = sentence[s:e]
        word, is_subword = tok, len(tok) != len(word_ref)
        if tok == "[UNK]":
            word, is_subword = word_ref, False
        pre.append({"word": word, "scores": scores[k], "start": s, "end": e, "index": k + 1, "is_subword": is_subword})
    return pre


def argmax(v):
    return max(range(len(v)), key=lambda j: (v[j], -j))


def aggregate_word(entities, strategy):
    word = convert_tokens_to_string([e["word"] for e in entities])
    if strategy == "first":
        scores = entities[0]["scores"]
    elif strategy == "max":
        scores = max(entities, key=lambda e: max(e["scores"]))["scores"]
    else:
        scores = [sum(e["scores"][j] for e in entities) / len(entities) for j in range(len(LABELS))]
    idx = argmax(scores)
    return {"entity": LABELS[idx], "score": scores[idx], "word": word,
            "start": entities[0]["start"], "end": entities[-1]["end"]}


def aggregate_words(pre, strategy):
    words, group = [], None
    for e in pre:
        if group is None:
            group = [e]
        elif e["is_subword"]:
            group.append(e)
        else:
            words.append(aggregate_word(group, strategy))
            group = [e]
    if group is not None:
        words.append(aggregate_word(group, strategy))
    return words


def get_tag(name):
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name


def group_sub_entities(entities, sentence):
    first, last = entities[0], entities[-1]
    return {"entity_group": first["entity"].split("-", 1)[-1],
            "score": sum(e["score"] for e in entities) / len(entities),
            "word": convert_tokens_to_string([e["word"] for e in entities]),
            "start": first["start"], "end": last["end"], "text": sentence[first["start"]:last["end"]]}


def group_entities(entities, sentence):
    groups, disagg = [], []
    for e in entities:
        if not disagg:
            disagg.append(e)
            continue
        bi, tag = get_tag(e["entity"])
        _, last_tag = get_tag(disagg[-1]["entity"])
        if tag == last_tag and bi != "B":
            disagg.append(e)
        else:
            groups.append(group_sub_entities(disagg, sentence))
            disagg = [e]
    if disagg:
        groups.append(group_sub_entities(disagg, sentence))
    return groups


def postprocess(sentence, pre, strategy, ignore_labels):
    if strategy in ("none", "simple"):
        entities = []
        for p in pre:
            idx = argmax(p["scores"])
            entities.append({"entity": LABELS[idx], "score": p["scores"][idx], "index": p["index"],
                             "word": p["word"], "start": p["start"], "end": p["end"]})
    else:
        entities = aggregate_words(pre, strategy)
    if strategy != "none":
        entities = group_entities(entities, sentence)
    out = [e for e in entities if e.get("entity") not in ignore_labels and e.get("entity_group") not in ignore_labels]
    for e in out:
        e["score"] = rnd(e["score"])
    return out


# ---- model --------------------------------------------------------------------------------------------------------
def token_logits(body_sd, classifier, cfg, input_ids):
    model = ref.BertModel(cfg, add_pooling_layer=False)
    model.load_state_dict({k: v.to(torch.float64) for k, v in body_sd.items()}, strict=True)
    model = model.double().eval()
    with torch.no_grad():
        out = model(torch.tensor([input_ids]), torch.ones(1, len(input_ids), dtype=torch.long),
                    torch.zeros(1, len(input_ids), dtype=torch.long))
        return out["last_hidden_state"][0] @ classifier["weight"].double().T + classifier["bias"].double()


def tokcls_config():
    with open(os.path.join(BASE, "config.json"), "r", encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["architectures"] = ["BertForTokenClassification"]
    cfg["id2label"] = {str(i): l for i, l in enumerate(LABELS)}
    cfg["label2id"] = {l: i for i, l in enumerate(LABELS)}
    return dict(sorted(cfg.items()))


def main():
    cfg = ref.BertConfig.from_json_file(os.path.join(BASE, "config.json"))
    full = ref.load_safetensors(os.path.join(BASE, "model.safetensors"))
    body = {k: v for k, v in full.items() if not k.startswith("pooler.")}
    assert len(body) < len(full), "tiny-bert has pooler weights to leave out"
    with open(os.path.join(BASE, "vocab.txt"), "r", encoding="utf-8") as f:
        vocab = {t.rstrip("\n"): i for i, t in enumerate(f)}

    gen = torch.Generator().manual_seed(SEED)
    # larger than initializer_range, with a bias towards O and I-, so that labels vary and some groups merge
    classifier = {"weight": torch.randn(len(LABELS), cfg.hidden_size, generator=gen) * 0.3,
                  "bias": torch.randn(len(LABELS), generator=gen) * 0.5
                  + torch.tensor([2.5, 0, 1.2, 0, 1.2, 0, 1.0])}

    folder = os.path.join(MODELS, NAME)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(tokcls_config(), indent=2) + "\n")
    for extra in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(BASE, extra), os.path.join(folder, extra))
    tensors = {"bert." + k: v for k, v in body.items()}
    tensors.update({"classifier." + k: v for k, v in classifier.items()})
    ref.save_safetensors(tensors, os.path.join(folder, "model.safetensors"))

    cases = []
    inputs = [("text", t) for t in TEXTS] + [("tokens", w) for w in WORD_INPUTS]
    for kind, value in inputs:
        if kind == "text":
            sentence, toks, word_ids = encode_text(value, vocab)
            word_starts = None
        else:
            sentence, toks, word_ids, word_starts = encode_words(value, vocab)
        input_ids = [vocab["[CLS]"]] + [vocab[t] for t, _, _ in toks] + [vocab["[SEP]"]]
        assert len(input_ids) <= cfg.max_position_embeddings
        logits = token_logits(body, classifier, cfg, input_ids)
        scores = torch.softmax(logits, dim=-1)[1:-1].tolist()
        pre = gather_pre_entities(sentence, toks, scores, word_ids, word_starts)
        case = {kind: value, "sentence": sentence, "input_ids": input_ids,
                "token_strings": ["[CLS]"] + [t for t, _, _ in toks] + ["[SEP]"],
                "offsets": [[0, 0]] + [[s, e] for _, s, e in toks] + [[0, 0]],
                "logits": rnd(logits), "outputs": {}}
        case["outputs"]["none_all"] = postprocess(sentence, pre, "none", [])
        for strategy in STRATEGIES:
            case["outputs"][strategy] = postprocess(sentence, pre, strategy, ["O"])
        cases.append(case)

    expected = {"model": NAME, "labels": LABELS, "cases": cases}
    with open(os.path.join(MODELS, NAME + ".expected.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(expected, indent=2) + "\n")

    # check: reload the written folder the way an HF loader would
    sd = ref.read_checkpoint_folder(folder)
    assert not any(k.startswith("bert.pooler") for k in sd)
    reloaded = {k[len("bert."):]: v for k, v in sd.items() if k.startswith("bert.")}
    assert set(reloaded) == set(body) and all(torch.equal(reloaded[k], body[k]) for k in body)
    for case in cases:
        again = token_logits(reloaded, {"weight": sd["classifier.weight"], "bias": sd["classifier.bias"]}, cfg, case["input_ids"])
        assert (again - torch.tensor(case["logits"], dtype=torch.float64)).abs().max() < 1e-5
    print(f"wrote {folder} and {len(cases)} cases:")
    for case in cases:
        print(" ", case["sentence"])
        print("    tokens:", " ".join(case["token_strings"]))
        print("    tags:  ", " ".join(e["entity"] for e in case["outputs"]["none_all"]))
        for strategy in STRATEGIES[1:]:
            print(f"    {strategy:>7}:", [(e["entity_group"], e["text"]) for e in case["outputs"][strategy]])


if __name__ == "__main__":
    main()
