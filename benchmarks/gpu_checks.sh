#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run of about 6 minutes on an H200: the CUDA tests and
# the training-throughput benchmark on the GPU (eager, bfloat16 and compiled). Needs only python3
# with torch, numpy, scikit-learn, tqdm and pytest (no project install, no audio libraries).
# Writes its logs and JSON into the folder given (default results/benchmarks).
#
#     bash benchmarks/gpu_checks.sh [OUT_DIR]
set -uo pipefail
out=${1:-results/benchmarks}
mkdir -p "$out"
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
# --noconftest: the shared fixtures write audio with soundfile, which these tests do not need
python3 -m pytest tests/test_cuda.py --noconftest -p no:cacheprovider -ra 2>&1 | tee "$out/test_cuda.log" || status=1
# the papers' batch of 64, then larger batches: is the step launch-bound or compute-bound?
for batch in 64 256 1024; do
    python3 benchmarks/train_throughput.py --device cuda --batch $batch --out "$out/train_throughput_cuda_b$batch.json" \
        2>&1 | tee -a "$out/train_throughput_cuda.log" || status=1
done
# Categorical UVAC at the papers' batch: tau changes every epoch, which a compiled step must not recompile for
python3 benchmarks/train_throughput.py --device cuda --model cat_uvac --out "$out/train_throughput_cuda_cat_uvac_b64.json" \
    2>&1 | tee -a "$out/train_throughput_cuda.log" || status=1
exit $status
