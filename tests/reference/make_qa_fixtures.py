"""Generate the BertForQuestionAnswering fixtures for the question-answering head plugin tests.

    /usr/bin/python3 tests/reference/make_qa_fixtures.py        (needs: apt-get install python3-torch)

Reads Fixtures/models/tiny-bert/ (written by make_model_fixtures.py) and writes, deterministically:
  Fixtures/models/tiny-bert-qa/          config.json (BertForQuestionAnswering), model.safetensors = tiny-bert's weights
                                         EXACTLY under bert.* (no pooler: add_pooling_layer=False, as HF) + a random
                                         qa_outputs.weight [2,32] / qa_outputs.bias [2]; vocab.txt, tokenizer_config.json
  Fixtures/models/tiny-bert-qa.expected.json
                                         for a few question/context pairs: the windows (input ids, token types) and the
                                         answers {answer, score, start, end} of transformers' question-answering pipeline,
                                         computed here by a port of its preprocessing (question + context windows,
                                         truncation only_second, stride doc_stride, overflowing tokens) and its
                                         postprocessing (p_mask with [CLS] kept, -10000 masking, softmax, null score,
                                         outer product, triu/tril by max_answer_len, top_k per window, align_to_words,
                                         stable sort across windows), with the model run in float64.
Tokenization: an exact BERT basic tokenizer + WordPiece for lowercase ASCII text over the tiny vocabulary (with offsets).
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bert_reference as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MODELS = os.path.join(REPO, "tests", "BertHost.Tests", "Fixtures", "models")
BASE = os.path.join(MODELS, "tiny-bert")
SEED = 20240611
SIG = 9


# ------------------------------------------------------------------------------------------------------------------
# tokenization (BertTokenizerFast semantics for lowercase ASCII): whitespace split, punctuation split, WordPiece
# ------------------------------------------------------------------------------------------------------------------
def is_punct(ch):
    o = ord(ch)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126


def pre_tokenize(text):
    """[(word, start, end)] with character offsets into text."""
    assert text == text.lower() and all(ord(c) < 128 for c in text), "lowercase ASCII only"
    words, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace() or is_punct(ch):
            if start is not None:
                words.append((text[start:i], start, i))
                start = None
            if is_punct(ch):
                words.append((ch, i, i + 1))
        elif start is None:
            start = i
    return words


def wordpiece(word, vocab):
    """[(piece, start, end)] relative to the word; [UNK] for the whole word when a piece is missing."""
    if len(word) > 100:
        return [("[UNK]", 0, len(word))]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab:
                found = sub
                break
            end -= 1
        if found is None:
            return [("[UNK]", 0, len(word))]
        pieces.append((found, start, end))
        start = end
    return pieces


def encode_sequence(text, vocab):
    """ids, offsets, word ids of one sequence (no specials)."""
    ids, offsets, words = [], [], []
    for w, (word, ws, _) in enumerate(pre_tokenize(text)):
        for piece, s, e in wordpiece(word, vocab):
            ids.append(vocab[piece])
            offsets.append((ws + s, ws + e))
            words.append(w)
    return ids, offsets, words


def split(length, max_len, stride):
    """tokenizers' EncodedSequence::truncate windows (direction right)."""
    if max_len >= length:
        return [(0, length)]
    assert stride < max_len
    out, start = [], 0
    while True:
        stop = min(start + max_len, length)
        out.append((start, stop))
        if stop == length:
            return out
        start += max_len - stride


def encode_windows(question, context, vocab, max_seq_len, doc_stride):
    """The pipeline's tokenizer call: truncation only_second, stride, return_overflowing_tokens (window order as HF)."""
    q_ids, _, _ = encode_sequence(question, vocab)
    c_ids, c_offs, c_words = encode_sequence(context, vocab)
    budget = max_seq_len - 3 - len(q_ids)
    windows = []
    for a, b in split(len(c_ids), budget, doc_stride) if len(q_ids) + len(c_ids) > max_seq_len - 3 else [(0, len(c_ids))]:
        ids = [vocab["[CLS]"]] + q_ids + [vocab["[SEP]"]] + c_ids[a:b] + [vocab["[SEP]"]]
        types = [0] * (len(q_ids) + 2) + [1] * (b - a + 1)
        seq_ids = [None] + [0] * len(q_ids) + [None] + [1] * (b - a) + [None]
        offsets = [(0, 0)] * (len(q_ids) + 2) + c_offs[a:b] + [(0, 0)]
        words = [None] * (len(q_ids) + 2) + c_words[a:b] + [None]
        windows.append({"input_ids": ids, "token_type_ids": types, "sequence_ids": seq_ids, "offsets": offsets, "word_ids": words})
    return windows


# ------------------------------------------------------------------------------------------------------------------
# the pipeline's postprocessing, ported from transformers/pipelines/question_answering.py
# ------------------------------------------------------------------------------------------------------------------
def decode_spans(start, end, topk, max_answer_len, undesired_tokens):
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    desired_spans = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
    starts = starts[desired_spans]
    ends = ends[desired_spans]
    scores = candidates[0, starts, ends]
    return starts, ends, scores


def select_starts_ends(start, end, p_mask, attention_mask, min_null_score, top_k, handle_impossible_answer, max_answer_len):
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def get_indices(window, s, e, align_to_words=True):
    words = window["word_ids"]
    if align_to_words and words[s] is not None and words[e] is not None:
        toks_s = [t for t, w in enumerate(words) if w == words[s] and window["sequence_ids"][t] == 1]
        toks_e = [t for t, w in enumerate(words) if w == words[e] and window["sequence_ids"][t] == 1]
        return window["offsets"][toks_s[0]][0], window["offsets"][toks_e[-1]][1]
    return window["offsets"][s][0], window["offsets"][e][1]


def postprocess(context, windows, logits, cls_id, top_k=1, handle_impossible_answer=False, max_answer_len=15):
    min_null_score = 1000000
    answers = []
    for window, (start_, end_) in zip(windows, logits):
        p_mask = np.array([[tok != 1 for tok in window["sequence_ids"]]]).astype(np.int64)
        p_mask[np.array([window["input_ids"]]) == cls_id] = 0       # keep the cls_token unmasked
        attention_mask = np.ones((1, len(window["input_ids"])), dtype=np.int64)
        starts, ends, scores, min_null_score = select_starts_ends(
            start_[None], end_[None], p_mask, attention_mask, min_null_score, top_k, handle_impossible_answer, max_answer_len)
        for s, e, score in zip(starts, ends, scores):
            assert score > 0, "a degenerate (zero-score) span: choose other cases"
            a, b = get_indices(window, int(s), int(e))
            answers.append({"score": score.item(), "start": a, "end": b, "answer": context[a:b]})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]


# ------------------------------------------------------------------------------------------------------------------
CASES = [
    {"question": "where did the man go?", "context": "he went to the city, then walked home with his dog."},
    {"question": "who sat on the mat?", "context": "the lazy cat sat on the mat. the quick brown fox jumped over the dog.",
     "top_k": 3},
    {"question": "what did she play?", "context": "she played music in the band, and her brother played football at school.",
     "top_k": 3, "handle_impossible_answer": True},
    {"question": "when was he born?", "context": "john was born in the north of the city in march, after the war.",
     "handle_impossible_answer": True, "max_answer_len": 3},
    {"question": "is it good?", "context": "no.", "handle_impossible_answer": True},
    {"question": "who walked home?", "context": "walked", "top_k": 1},
    # ~150 context tokens: five windows of tiny-bert's 64 tokens with the default doc_stride min(64 // 2, 128) = 32
    {"question": "which team won the game?",
     "context": ("the season started in september. " * 3
                 + "the home team played well, but the other team won the game in the last minute. "
                 + "many people came to see the music show in the new building near the river. " * 2
                 + "after the war, the school moved to the south of the county, and the family found a house there."),
     "top_k": 3},
]


def rnd(x):
    return float(f"{x:.{SIG}g}")


def main():
    cfg = ref.BertConfig.from_json_file(os.path.join(BASE, "config.json"))
    body = ref.load_safetensors(os.path.join(BASE, "model.safetensors"))
    body = {k: v for k, v in body.items() if not k.startswith("pooler.")}
    with open(os.path.join(BASE, "vocab.txt"), "r", encoding="utf-8") as f:
        vocab = {t.rstrip("\n"): i for i, t in enumerate(f)}
    max_seq_len = cfg.max_position_embeddings
    doc_stride = min(max_seq_len // 2, 128)

    gen = torch.Generator().manual_seed(SEED)
    qa = {"weight": torch.randn(2, cfg.hidden_size, generator=gen) * 0.5, "bias": torch.randn(2, generator=gen) * 0.1}

    folder = os.path.join(MODELS, "tiny-bert-qa")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(BASE, "config.json"), "r", encoding="utf-8") as f:
        config = json.load(f)
    config["architectures"] = ["BertForQuestionAnswering"]
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    for extra in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(BASE, extra), os.path.join(folder, extra))
    tensors = {"bert." + k: v for k, v in body.items()}
    tensors.update({"qa_outputs." + k: v for k, v in qa.items()})
    ref.save_safetensors(tensors, os.path.join(folder, "model.safetensors"))

    # reload the written folder as an HF loader would, and run everything from it
    sd = ref.read_checkpoint_folder(folder)
    model = ref.BertModel(cfg, add_pooling_layer=False)
    model.load_state_dict({k: v.to(torch.float64) for k, v in ref.to_bert_model_keys(sd).items()}, strict=True)
    model = model.double().eval()
    w, b = sd["qa_outputs.weight"].double(), sd["qa_outputs.bias"].double()

    cases = []
    for case in CASES:
        windows = encode_windows(case["question"], case["context"], vocab, max_seq_len, doc_stride)
        logits = []
        with torch.no_grad():
            for win in windows:
                ids = torch.tensor([win["input_ids"]])
                out = model(ids, torch.ones_like(ids), torch.tensor([win["token_type_ids"]]))
                x = (out["last_hidden_state"][0] @ w.T + b).numpy()   # [T, 2]
                logits.append((x[:, 0], x[:, 1]))
        params = {k: case[k] for k in ("top_k", "handle_impossible_answer", "max_answer_len") if k in case}
        answers = postprocess(case["context"], windows, logits, vocab["[CLS]"], **params)
        # every decision must be robust to float32 noise: distinct scores in the ranking
        all_scores = sorted((a["score"] for a in postprocess(case["context"], windows, logits, vocab["[CLS]"],
                                                                **{**params, "top_k": params.get("top_k", 1) + 1})), reverse=True)
        for s1, s2 in zip(all_scores, all_scores[1:]):
            assert s1 - s2 > 1e-5 or s1 == s2, f"near tie {s1} {s2} in {case['question']!r}"
        cases.append({
            "question": case["question"], "context": case["context"], "parameters": params,
            "windows": [{"input_ids": win["input_ids"], "token_type_ids": win["token_type_ids"]} for win in windows],
            "answers": [{"answer": a["answer"], "score": rnd(a["score"]), "start": a["start"], "end": a["end"]} for a in answers],
        })
    expected = {"model": "tiny-bert-qa", "max_seq_len": max_seq_len, "doc_stride": doc_stride, "cases": cases}
    with open(os.path.join(MODELS, "tiny-bert-qa.expected.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {folder} and {len(cases)} cases:")
    for c in cases:
        print(f"  {len(c['windows'])} window(s) {c['question']!r}: " + "; ".join(f"{a['answer']!r} {a['score']:.4f} [{a['start']},{a['end']})" for a in c["answers"]))


if __name__ == "__main__":
    main()
