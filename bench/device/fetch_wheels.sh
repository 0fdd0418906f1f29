#!/usr/bin/env bash
# Run HERE, in the repo root's checkout, before a device call (it needs the package registry):
# downloads the Python 3.12 wheels that the GPU machine's image lacks for Ray Tune into .whl/
# (git-ignored), at the versions this checkout's .venv runs. Ray's wheel is 79 MB; its Java
# jars (32 MB, unused by Python) are cut out so that everything fits the 64 MiB a call carries.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: $PY not found: run 'make venv' first" >&2; exit 2; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
# Ray and what the image lacks of its needs (the image has torch, numpy, pandas, pyarrow,
# scikit-learn, aiohttp's family, protobuf, pyyaml, requests, click, filelock, msgpack, pytest).
mapfile -t pins < <("$PY" - <<'PYEOF'
import importlib.metadata as metadata
for name in ["ray", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py",
             "tensorboardX", "pydantic", "pydantic-core", "annotated-types", "typing-inspection"]:
    print(f"{name}=={metadata.version(name)}")
PYEOF
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
"$PY" - <<'PYEOF'
import pathlib
import zipfile

for wheel in pathlib.Path(".whl").glob("ray-*.whl"):
    pruned = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(pruned, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith("ray/jars/"):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(l for l in lines if not l.startswith("ray/jars/")).encode()
            dst.writestr(item, data)
    pruned.replace(wheel)
PYEOF
du -sh .whl
ls .whl
