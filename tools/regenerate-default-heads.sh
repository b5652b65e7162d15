#!/usr/bin/env bash
# Regenerates the trained heads of config/default.yaml — config/heads/sentiment and config/heads/ner — byte-for-byte
# from the same data and seed. Run from anywhere after `dotnet build -c Release BertHost.sln` (which imports the body,
# models/all-MiniLM-L6-v2). Data is read from ../shared/data relative to the repository root (DATA= overrides); the
# splits below are carved from the TRAIN files (the dev/test splits stay unused) into a temporary folder.
#
#   sentiment: SST-2 train.tsv data rows 1..8,000 to train, the last 2,000 (65,350..67,349) to evaluate
#   ner:       CoNLL-2003 train.txt lines 1..59,467 (the first 4,008 sentences) to train,
#              lines 200,951..219,554 (the last 1,004 sentences, from a -DOCSTART- boundary) to evaluate
#
# Both train in head mode (body frozen, shared with the other heads), seed 42. What makes the output reproducible:
#   - OMP_NUM_THREADS=2 fixes libtorch's intra-op thread count, so every reduction is split the same way;
#   - the trainer's batches come from a seeded shuffle and torch's generator is reseeded before every batch;
#   - the feature cache is filled in a fixed order (examples sorted by length, ties in data order);
#   - SOURCE_DATE_EPOCH fixes head.json's saved_at.
# The setup and the splits are tools/heads-data.sh's.
# Usage: tools/regenerate-default-heads.sh [OUT_DIR]   (default config/heads; OUT_DIR/sentiment, OUT_DIR/ner)
set -euo pipefail
sst2_train_rows=8000
source "$(dirname "$0")/heads-data.sh"
out=${1:-config/heads}

# --fresh ignores the heads' weights: folders, but the deployment still has to name existing folders to load.
mkdir -p config/heads/sentiment config/heads/ner
train() {   # HEAD TRAIN EVAL EPOCHS
    "$berthost" train --config config/default.yaml --head "$1" --fresh --mode head --train "$2" --eval "$3" \
        --epochs "$4" --batch-size 32 --seed 42 --out "$tmp/$1"
    mkdir -p "$out/$1"
    cp "$tmp/$1/head.json" "$tmp/$1/head.safetensors" "$out/$1/"
}
train sentiment "$tmp/sst2-train.tsv" "$tmp/sst2-eval.tsv" 4
train ner "$tmp/conll-train.txt" "$tmp/conll-eval.txt" 4
sha256sum "$out"/sentiment/head.* "$out"/ner/head.*
