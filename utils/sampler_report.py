"""Read the rows of ``utils.samplers.distance_vs_nfe`` (one per sampler and NFE budget): a table
for the lesson, and sentences computed from the numbers so that prose cannot drift from them.

bench/samplers_*.py write the same rows as markdown (bench/sampler_tables.py).
"""
from utils.checks import check_choice, check_number

__all__ = ["results_table", "findings", "check_rows"]


def check_rows(rows) -> None:
    """``rows`` must be what ``distance_vs_nfe`` returns."""
    keys = {"sampler", "budget", "distance"}
    if (not isinstance(rows, list) or not rows
            or not all(isinstance(r, dict) and keys <= set(r) for r in rows)):
        raise ValueError(f"rows must be the non-empty list of dicts that distance_vs_nfe returns "
                         f"(keys {sorted(keys)}), got {str(rows)[:80]}.")


def results_table(rows: list[dict]):
    """``distance_vs_nfe`` rows as a pandas table: a row per sampler, a column per NFE budget."""
    import pandas as pd

    check_rows(rows)

    table = pd.DataFrame(rows).pivot(index="sampler", columns="budget", values="distance")
    table = table.loc[list(dict.fromkeys(r["sampler"] for r in rows))]  # samplers in run order
    table.columns = [f"NFE {b}" for b in table.columns]
    return table


def findings(rows: list[dict], floor: float, baseline: str = "Euler/DDIM") -> list[str]:
    """Sentences computed from benchmark rows, so that prose cannot drift from the numbers."""
    check_rows(rows)
    check_number("floor", floor, 0, strict=True)
    check_choice("baseline", baseline, list(dict.fromkeys(r["sampler"] for r in rows)))
    budgets = sorted({r["budget"] for r in rows})
    dist = {(r["sampler"], r["budget"]): r["distance"] for r in rows}
    names = list(dict.fromkeys(r["sampler"] for r in rows))
    out = []
    for b in budgets:
        best = min(names, key=lambda s: dist[s, b])
        out.append(f"NFE {b}: best is {best} ({dist[best, b]:.3g}, {dist[best, b] / floor:.1f}x "
                   f"the noise floor); {baseline} gives {dist[baseline, b]:.3g}.")
    last = budgets[-1]
    top = min(dist[s, last] for s in names)
    close = [s for s in names if dist[s, last] <= 1.1 * top]
    if top > 2 * floor and len(close) > 1:
        out.append(f"At NFE {last} no sampler is within 2x the noise floor, and {', '.join(close)} "
                   f"are within 10% of the best ({top:.3g}, {top / floor:.1f}x the floor): more "
                   "evaluations no longer separate them, so what is left is an error they share "
                   "(with a learned score, the network's own).")
    for name in names:
        reached = [b for b in budgets if dist[name, b] <= 2 * floor]
        line = (f"{name} is within 2x the noise floor from NFE {reached[0]} on" if reached
                else f"{name} never gets within 2x the noise floor (up to NFE {budgets[-1]})")
        # compare only where one of the two is clearly above the floor (else it is noise)
        seen = [b for b in budgets if max(dist[name, b], dist[baseline, b]) > 2 * floor]
        if name != baseline and seen:
            worse = [b for b in seen if dist[name, b] > dist[baseline, b]]
            line += (f"; it is worse than {baseline} at {len(worse)} of the {len(seen)} budgets "
                     "where either is above 2x the floor")
        out.append(line + ".")
    return out
