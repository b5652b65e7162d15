#!/usr/bin/env bash
# Trains the LoRA sentiment head for the MiniLM deployment — config/heads/sentiment-lora — from SST-2 with a rank-8
# adapter on query and value of every layer (the body stays frozen and shared). Run from anywhere after
# `dotnet build -c Release BertHost.sln` (which imports models/all-MiniLM-L6-v2). Data is read from ../shared/data
# relative to the repository root (DATA= overrides); the splits are carved from the TRAIN file, the same ones the
# frozen-body head of tools/regenerate-default-heads.sh uses, so the two heads' eval accuracies compare:
#
#   SST-2 train.tsv data rows 1..2,000 to train, the last 2,000 (65,350..67,349) to evaluate (the frozen head trains
#   on rows 1..8,000: the adapter beats it with a quarter of the data, 0.8555 vs 0.8405)
#
# The deployment is a temporary YAML (the shipped config/default.yaml is not needed). Reproducible as that script is:
# OMP_NUM_THREADS fixed, seeded shuffles and dropout, SOURCE_DATE_EPOCH for head.json's saved_at. The result is worth
# shipping only where its eval accuracy beats the frozen-body head's (head.json metrics of config/heads/sentiment).
# Usage: tools/regenerate-lora-heads.sh [OUT_DIR] [EPOCHS]   (default config/heads, 2; writes OUT_DIR/sentiment-lora)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-config/heads}
epochs=${2:-2}
data=${DATA:-../shared/data}
berthost=${BERTHOST:-src/BertHost/bin/Release/net10.0/berthost}
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1764720000}   # 2025-12-03T00:00:00Z

[ -f models/all-MiniLM-L6-v2/model.safetensors ] || { echo "models/all-MiniLM-L6-v2 is missing: run dotnet build -c Release BertHost.sln first" >&2; exit 1; }
echo "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1  $data/sst2/train.tsv" | sha256sum -c --quiet - \
    || { echo "$data/sst2/train.tsv is not the expected file" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n '1p;2,2001p' "$data/sst2/train.tsv" > "$tmp/sst2-train.tsv"
{ head -n 1 "$data/sst2/train.tsv"; tail -n 2000 "$data/sst2/train.tsv"; } > "$tmp/sst2-eval.tsv"
cat > "$tmp/lora.yaml" <<YAML
body:
  checkpoint: $root/models/all-MiniLM-L6-v2
  device: cpu
  dtype: float32
heads:
  - name: sentiment-lora
    kind: text-classification
    plugin: $root/plugins/BertHost.Heads.Classification
    labels: [negative, positive]
    options: { pooling: mean }
YAML
"$berthost" train --config "$tmp/lora.yaml" --head sentiment-lora --mode lora --lora-rank 8 --lora-alpha 16 \
    --lora-dropout 0.1 --lora-targets query,value --train "$tmp/sst2-train.tsv" --eval "$tmp/sst2-eval.tsv" \
    --epochs "$epochs" --batch-size 16 --learning-rate 1e-3 --seed 42 --out "$tmp/sentiment-lora"
mkdir -p "$out/sentiment-lora"
cp "$tmp/sentiment-lora/head.json" "$tmp/sentiment-lora/head.safetensors" "$out/sentiment-lora/"
sha256sum "$out"/sentiment-lora/head.*
