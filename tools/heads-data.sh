# Sourced by tools/regenerate-default-heads.sh and tools/regenerate-lora-heads.sh: what both need before training —
# the repository root as working directory, the built berthost, the imported body, the reproducibility settings, the
# data files checked by sha256, and the held-out splits carved from the TRAIN files into $tmp (removed on exit):
#   $tmp/sst2-train.tsv   SST-2 train.tsv header + data rows 1..$sst2_train_rows (set it before sourcing)
#   $tmp/sst2-eval.tsv    header + the last 2,000 data rows (65,350..67,349)
#   $tmp/conll-train.txt  CoNLL-2003 train.txt lines 1..59,467 (the first 4,008 sentences)
#   $tmp/conll-eval.txt   lines 200,951.. (the last 1,004 sentences, from a -DOCSTART- boundary)
# Reproducible output needs: OMP_NUM_THREADS fixed (every reduction split the same way), seeded shuffles and dropout
# (the trainer's), SOURCE_DATE_EPOCH for head.json's saved_at.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
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
sed -n "1p;2,$((sst2_train_rows + 1))p" "$data/sst2/train.tsv" > "$tmp/sst2-train.tsv"
{ head -n 1 "$data/sst2/train.tsv"; tail -n 2000 "$data/sst2/train.tsv"; } > "$tmp/sst2-eval.tsv"
sed -n '1,59467p' "$data/conll2003/train.txt" > "$tmp/conll-train.txt"
sed -n '200951,$p' "$data/conll2003/train.txt" > "$tmp/conll-eval.txt"
