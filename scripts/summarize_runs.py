#!/usr/bin/env python
"""Print one line per finished run under a folder: kind, model, augmentation, accuracy, speed."""
import json
import sys
from pathlib import Path


def main(root: str) -> int:
    rows = []
    for m in sorted(Path(root).glob("*/metrics.json")):
        d = json.loads(m.read_text())
        teacher = Path(d["teacher"]).name if d.get("teacher") else "-"
        rows.append((m.parent.name, d["kind"], d["model"], d["augment"], teacher, 100 * d["test_accuracy"],
                     100 * d["agreement"] if "agreement" in d else None, d["images_per_second"]))
    if not rows:
        print(f"no finished runs under {root}")
        return 1
    print(f"\n{'run':<24}{'kind':<9}{'model':<10}{'augment':<12}{'teacher':<22}{'test acc':>9}{'agree':>8}{'img/s':>8}")
    for r in rows:
        agree = f"{r[6]:.1f}%" if r[6] is not None else "-"
        print(f"{r[0]:<24}{r[1]:<9}{r[2]:<10}{r[3]:<12}{r[4]:<22}{r[5]:>8.2f}%{agree:>8}{r[7]:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
