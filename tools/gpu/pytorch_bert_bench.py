"""PyTorch reference for the GPU body benchmark: Hugging Face BertModel on the SAME model folder the host benchmarks,
in eager attention and in SDPA attention, at sequence 128, timed with CUDA synchronisation like the host's suite.

    python3 tools/gpu/pytorch_bert_bench.py MODEL_DIR --dtype bf16 --batches 1,8,64,256,1024
"""
import argparse, json, time, torch
from transformers import BertModel

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
p.add_argument("--batches", default="1,8,64,256,1024")
p.add_argument("--impl", default="eager,sdpa")
p.add_argument("--seq", type=int, default=128)
a = p.parse_args()
dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
results = []
for impl in a.impl.split(","):
    model = BertModel.from_pretrained(a.model, attn_implementation=impl).to("cuda", dtype=dtype).eval()
    gen = torch.Generator(device="cuda").manual_seed(0)
    for batch in [int(b) for b in a.batches.split(",")]:
        ids = torch.randint(1000, 30000, (batch, a.seq), device="cuda", generator=gen)
        mask, types = torch.ones_like(ids), torch.zeros_like(ids)
        with torch.inference_mode():
            for _ in range(5):
                model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            torch.cuda.synchronize()
            reps = max(8, 2048 // batch)
            samples = []
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(reps):
                    model(input_ids=ids, attention_mask=mask, token_type_ids=types)
                torch.cuda.synchronize()
                samples.append((time.perf_counter() - t) / reps)
        ms = sorted(samples)[len(samples) // 2] * 1000
        row = {"engine": f"pytorch-{impl}", "dtype": a.dtype, "batch": batch, "seq": a.seq, "ms_per_batch": round(ms, 3),
               "sequences_per_s": round(batch / ms * 1000, 1)}
        results.append(row)
        print(json.dumps(row), flush=True)
    del model
    torch.cuda.empty_cache()
print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
