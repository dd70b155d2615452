"""Rebuild `src/assets/models/legend_worldcereal.csv` from WorldCereal's legend hierarchy.

    python scripts/make_legend_table.py   # reads ../shared/data/s2-crops/raw/crop_type_class_mappings.csv

Keeps three columns of the MIT-licensed WorldCereal table (ESA worldcereal-classification): the
code, the finest label and the coarse ``sampling_label`` that the shared s2-crops files call
``labels``. The legend module maps that coarse name onto the platform's crop legend.
"""

from __future__ import annotations

import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "s2-crops" / "raw" / "crop_type_class_mappings.csv"
TARGET = REPO / "src" / "assets" / "models" / "legend_worldcereal.csv"


def main() -> None:
    with open(SOURCE, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    with open(TARGET, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ewoc_code", "label_full", "coarse"])
        for r in rows:
            w.writerow([r["ewoc_code"], r["label_full"], r["sampling_label"]])
    print(f"wrote {len(rows)} rows to {TARGET}")


if __name__ == "__main__":
    main()
