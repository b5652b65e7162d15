#!/usr/bin/env bash
# Runs a BertHost program built with -p:TorchBackend=external on the libtorch (CUDA included) of an installed PyTorch:
#   tools/gpu/run-with-pytorch-libtorch.sh out/berthost/berthost serve --config deploy.yaml
# TorchSharp 0.107's libLibTorchSharp binds by name to libtorch.so/libtorch_cpu.so/libc10.so; PyTorch 2.10/2.11 wheels
# provide them (checked on PyTorch 2.11.0+cu130, H100). PYTHON picks the interpreter whose torch is used.
set -euo pipefail
python=${PYTHON:-python3}
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
