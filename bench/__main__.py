"""Run every benchmark and print one table: figure, baseline measured in the same run, ratio.

    python -m bench            # the whole suite (a few minutes)
    python -m bench --quick    # smaller sizes, for a smoke run
    python -m bench odds mqtt  # only these areas
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def areas() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(ROOT)])
                  if m.name.startswith("bench_"))


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 1:
        return f"{value:,.2f} {unit}"
    return f"{value:.4g} {unit}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("areas", nargs="*", help=f"subset of: {', '.join(areas())}")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT.parent))
    chosen = args.areas or areas()
    rows: list[dict] = []
    failed = []
    for area in chosen:
        t0 = time.monotonic()
        print(f"running bench_{area} ...", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(f"bench.bench_{area}")
            for row in mod.run(quick=args.quick):
                row.setdefault("area", area)
                rows.append(row)
        except Exception:
            failed.append(area)
            traceback.print_exc()
        print(f"  done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    w1 = max([len(r["name"]) for r in rows] + [6])
    w2 = max([len(str(r.get("baseline_name") or "")) for r in rows] + [8])
    print()
    print(f"{'area':<8} {'figure':<{w1}} {'value':>16}   {'baseline':<{w2}} {'value':>16}  ratio")
    print("-" * (8 + w1 + w2 + 60))
    for r in rows:
        base = r.get("baseline")
        ratio = (r["value"] / base) if base else None
        print(f"{r['area']:<8} {r['name']:<{w1}} {fmt(r['value'], r.get('unit', '')):>16}   "
              f"{str(r.get('baseline_name') or '-'):<{w2}} {fmt(base, r.get('unit', '')):>16}  "
              f"{'' if ratio is None else f'{ratio:.2f}x'}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
