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
# Usage: tools/regenerate-default-heads.sh [OUT_DIR]   (default config/heads; OUT_DIR/sentiment, OUT_DIR/ner)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-config/heads}
data=${DATA:-../shared/data}
berthost=${BERTHOST:-src/BertHost/bin/Release/net10.0/berthost}
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1764720000}   # 2025-12-03T00:00:00Z

[ -f models/all-MiniLM-L6-v2/model.safetensors ] || { echo "models/all-MiniLM-L6-v2 is missing: run dotnet build -c Release BertHost.sln first" >&2; exit 1; }
check() { echo "$2  $1" | sha256sum -c --quiet - || { echo "$1 is not the expected file" >&2; exit 1; }; }
check "$data/sst2/train.tsv" 48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1
check "$data/conll2003/train.txt" 213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '1p;2,8001p' "$data/sst2/train.tsv" > "$tmp/sst2-train.tsv"
{ head -n 1 "$data/sst2/train.tsv"; tail -n 2000 "$data/sst2/train.tsv"; } > "$tmp/sst2-eval.tsv"
sed -n '1,59467p' "$data/conll2003/train.txt" > "$tmp/conll-train.txt"
sed -n '200951,$p' "$data/conll2003/train.txt" > "$tmp/conll-eval.txt"

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
