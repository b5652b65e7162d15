#!/usr/bin/env bash
# Measures the heads of config/experiments/minilm.yaml on all-MiniLM-L6-v2 with the product: `berthost train --fresh`
# then `berthost eval` on a split held out from the same TRAIN file (the dev/test splits stay unused). docs/training.md
# "Training heads" has the table this printed.
#   SST-2:  train data rows 1..8,000, eval the last 2,000 (65,350..67,349)   (partial/full: train rows 1..2,000)
#   MRPC:   train data rows 1..3,268, eval the last 400
#   CoNLL:  train lines 1..59,467 (4,008 sentences), eval lines 200,951..219,554 (the last 1,004 sentences)
# Usage: tools/measure-accuracy.sh [head|tuned|all] [RUNS_DIR]   (default: all, /tmp/berthost-runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
export BERTHOST_RUNS=${2:-/tmp/berthost-runs}
data=${DATA:-../shared/data}
berthost=${BERTHOST:-src/BertHost/bin/Release/net10.0/berthost}
export OMP_NUM_THREADS=2
config=config/experiments/minilm.yaml
splits=$BERTHOST_RUNS/data
mkdir -p "$splits"
sed -n '1p;2,8001p' "$data/sst2/train.tsv" > "$splits/sst2-train.tsv"
sed -n '1p;2,2001p' "$data/sst2/train.tsv" > "$splits/sst2-train-2000.tsv"
{ head -n 1 "$data/sst2/train.tsv"; tail -n 2000 "$data/sst2/train.tsv"; } > "$splits/sst2-eval.tsv"
sed -n '1p;2,3269p' "$data/mrpc/train.tsv" > "$splits/mrpc-train.tsv"
{ head -n 1 "$data/mrpc/train.tsv"; tail -n 400 "$data/mrpc/train.tsv"; } > "$splits/mrpc-eval.tsv"
sed -n '1,59467p' "$data/conll2003/train.txt" > "$splits/conll-train.txt"
sed -n '200951,$p' "$data/conll2003/train.txt" > "$splits/conll-eval.txt"
# every head of the deployment must name an existing folder to load (--fresh ignores it while training)
for h in sst2-cls sst2-mean sst2-attention mrpc-cls mrpc-mean mrpc-attention ner-last ner-four; do mkdir -p "$BERTHOST_RUNS/$h"; done

run() {   # NAME HEAD TRAIN EVAL [train options...]: train into RUNS/NAME, then eval it under HEAD's name
    local name=$1 head=$2 train=$3 eval=$4; shift 4
    local start=$SECONDS
    "$berthost" train --config "$config" --head "$head" --fresh --train "$train" --eval "$eval" --seed 42 \
        --out "$BERTHOST_RUNS/$name" "$@" > "$BERTHOST_RUNS/$name.train.jsonl" 2> "$BERTHOST_RUNS/$name.train.err"
    local trained=$((SECONDS - start))
    if [ "$name" = "$head" ]; then
        "$berthost" eval --config "$config" --head "$head" --data "$eval" > "$BERTHOST_RUNS/$name.eval.json"
    else   # a partial/full run carries its own body: its train-time evaluation of the best epoch is the score
        tail -n 1 "$BERTHOST_RUNS/$name.train.jsonl" > "$BERTHOST_RUNS/$name.eval.json"
    fi
    echo "$name ($*) train ${trained}s: $(cat "$BERTHOST_RUNS/$name.eval.json")"
}

if [ "$what" = head ] || [ "$what" = all ]; then
    for p in cls mean attention; do
        run sst2-$p sst2-$p "$splits/sst2-train.tsv" "$splits/sst2-eval.tsv" --mode head --epochs 4 --batch-size 32
    done
    for p in cls mean attention; do
        run mrpc-$p mrpc-$p "$splits/mrpc-train.tsv" "$splits/mrpc-eval.tsv" --mode head --epochs 4 --batch-size 32
    done
    run ner-last ner-last "$splits/conll-train.txt" "$splits/conll-eval.txt" --mode head --epochs 4 --batch-size 32
    run ner-four ner-four "$splits/conll-train.txt" "$splits/conll-eval.txt" --mode head --epochs 4 --batch-size 32
fi
if [ "$what" = tuned ] || [ "$what" = all ]; then
    run sst2-mean-partial2 sst2-mean "$splits/sst2-train-2000.tsv" "$splits/sst2-eval.tsv" --mode partial --partial-layers 2 \
        --epochs 2 --batch-size 16 --learning-rate 1e-4
    run sst2-mean-full sst2-mean "$splits/sst2-train-2000.tsv" "$splits/sst2-eval.tsv" --mode full \
        --epochs 2 --batch-size 16 --learning-rate 5e-5
fi
