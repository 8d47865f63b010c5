"""The markdown table that bench/samplers_gmm.py and bench/samplers_mnist.py write into their
reports (lesson 07 shows the same rows with ``utils.sampler_report.results_table``)."""


def markdown_table(rows: list[dict], floor: float) -> str:
    """``results_table`` in markdown, with the noise floor as a last row; an actual NFE that
    differs from the budget (Heun's) in brackets."""
    budgets = sorted({r["budget"] for r in rows})
    lines = ["| sampler | " + " | ".join(f"NFE {b}" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for name in dict.fromkeys(r["sampler"] for r in rows):
        mine = {r["budget"]: r for r in rows if r["sampler"] == name}
        cells = [f"{mine[b]['distance']:.3g}"
                 + (f" ({mine[b]['nfe']})" if mine[b]["nfe"] != b else "") for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| *noise floor* | " + " | ".join(f"*{floor:.3g}*" for _ in budgets) + " |")
    return "\n".join(lines)
