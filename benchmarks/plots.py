"""PNG plots of a results document (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw_all"]

COLORS = {
    "lazyshape": "#1f77b4", "lazyshape_symbolic": "#6baed6", "lazyshape_torch": "#1f77b4",
    "lazyshape_numpy": "#9ecae1", "lazyshape_jax": "#6baed6", "torch_meta": "#d62728",
    "torch_lazy": "#ff9896", "torch_hand": "#e377c2", "flax_eval_shape": "#2ca02c",
    "flax_init": "#2ca02c", "keras": "#ff7f0e", "python_floor": "#7f7f7f",
}


def _bars(ax: Any, section: dict[str, Any], names: list[str], title: str) -> None:
    models = list(section)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs, ys, errs = [], [], []
        for i, key in enumerate(models):
            c = section[key].get("contenders", {}).get(name)
            if c is None:
                continue
            ms = c["ms"]
            xs.append(i + (j - (len(names) - 1) / 2) * width)
            ys.append(ms["median"])
            errs.append([[ms["median"] - ms["q1"]], [ms["q3"] - ms["median"]]])
        if not xs:
            continue
        lo = [e[0][0] for e in errs]
        hi = [e[1][0] for e in errs]
        ax.bar(xs, ys, width, label=name, color=COLORS.get(name), yerr=[lo, hi], capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([_label(k, section[k]) for k in models], fontsize=8)
    ax.set_ylabel("milliseconds (log scale; median, IQR)")
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3)


def _label(key: str, entry: dict[str, Any]) -> str:
    names = {"A": "A: 1000x(Linear,ReLU)", "B": "B: MLP 4096", "C": "C: ResNet-18",
             "D": "D: 12 blocks", "gpt2": "GPT-2 small"}
    return names.get(key, key)


def draw_all(doc: dict[str, Any], stem: Path) -> list[Path]:
    """Draw every section present; returns the PNG paths (``<stem>-<what>.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[Path] = []
    env = doc.get("environment", {})
    footer = (f"{env.get('timestamp', '')}, {env.get('cpu_count')} CPUs, load average "
              f"{env.get('settings', {}).get('load_average_at_start', '?')}")

    def save(fig: Any, what: str) -> None:
        fig.text(0.99, 0.005, footer, ha="right", va="bottom", fontsize=6, color="gray")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        path = stem.with_name(f"{stem.name}-{what}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)

    if "resolve" in doc:
        fig, ax = plt.subplots(figsize=(10, 5))
        _bars(ax, doc["resolve"], ["lazyshape", "lazyshape_symbolic", "torch_meta",
                                   "flax_eval_shape", "keras"],
              "Shape inference without allocation (fresh model per repeat)")
        save(fig, "resolve")
    if "init" in doc:
        fig, ax = plt.subplots(figsize=(10, 5))
        _bars(ax, doc["init"], ["lazyshape_torch", "lazyshape_numpy", "lazyshape_jax",
                                "torch_lazy", "torch_hand", "flax_init", "keras"],
              "Deferred initialization to a usable model")
        save(fig, "init")
    if "scaling" in doc:
        sc = doc["scaling"]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
        for api, rows in sc["time"].items():
            ns = sorted(int(n) for n in rows)
            med = [rows[str(n) if str(n) in rows else n]["per_layer_us"]["median"] for n in ns]
            q1 = [rows[str(n) if str(n) in rows else n]["per_layer_us"]["q1"] for n in ns]
            q3 = [rows[str(n) if str(n) in rows else n]["per_layer_us"]["q3"] for n in ns]
            ax1.plot(ns, med, marker="o", label=api)
            ax1.fill_between(ns, q1, q3, alpha=0.2)
        ax1.set_xscale("log")
        ax1.set_ylim(bottom=0)
        ax1.set_xlabel("layers in the stack")
        ax1.set_ylabel("ls.infer time per layer (µs)")
        ax1.set_title("Scaling: resolution time per layer (flat = linear)")
        ax1.grid(alpha=0.3)
        ax1.legend()
        for api, rows in sc.get("memory", {}).items():
            pts = sorted((int(n), r) for n, r in rows.items() if "error" not in r)
            if pts:
                ax2.plot([n for n, _ in pts], [r["increase_bytes"] / n for n, r in pts],
                         marker="o", label=f"{api}: ls.infer peak")
                ax2.plot([n for n, _ in pts], [r["define_bytes"] / n for n, r in pts],
                         marker="x", linestyle="--", label=f"{api}: the model itself")
        ax2.set_xscale("log")
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel("layers in the stack")
        ax2.set_ylabel("bytes per layer (resident set)")
        ax2.set_title("Scaling: memory per layer (separate processes)")
        ax2.text(0.98, 0.02, "below ~1,000 layers the resident set's\npage/arena granularity "
                 "dominates", transform=ax2.transAxes, ha="right", va="bottom", fontsize=7,
                 color="gray")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
        save(fig, "scaling")
    fwd = [c for c in doc.get("comparisons", [])
           if c["metric"].startswith("forward") and c["stats"] and c["target"]]
    if fwd:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(fwd) + 1.5))
        labels = [c["metric"].removeprefix("forward ").removesuffix(": lazyshape / hand")
                  for c in fwd]
        med = [c["stats"]["median"] for c in fwd]
        err = [[c["stats"]["median"] - c["stats"]["q1"] for c in fwd],
               [c["stats"]["q3"] - c["stats"]["median"] for c in fwd]]
        colors = ["#2ca02c" if c["status"] == "PASS" else "#d62728" for c in fwd]
        ys = list(range(len(fwd)))
        ax.barh(ys, [m - 1 for m in med], left=1, xerr=err, color=colors, capsize=2)
        for y, c in zip(ys, fwd, strict=True):
            ax.plot([c["target"]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=1)
        ax.axvline(1, color="gray", linewidth=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("forward time, lazyshape-built / hand-written (black tick: target)")
        ax.set_title("Forward overhead after initialization")
        save(fig, "forward")
    if "memory" in doc:
        rows = [(f"{sk} {name}", r) for sk, res in doc["memory"].items()
                for name, r in res.items() if "error" not in r]
        if rows:
            fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5))
            ys = list(range(len(rows)))
            ax.barh(ys, [r["increase_bytes"] / 2**20 for _, r in rows],
                    color=[COLORS.get(k.split()[-1], "#999") for k, _ in rows])
            for y, (_, r) in zip(ys, rows, strict=True):
                if "param_bytes" in r:
                    ax.plot([r["param_bytes"] / 2**20] * 2, [y - 0.4, y + 0.4], color="black")
            ax.set_yticks(ys)
            ax.set_yticklabels([k for k, _ in rows], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("peak resident set above the pre-step baseline, MiB "
                          "(black tick: parameter bytes)")
            ax.set_title("Peak memory of each step (one fresh process each)")
            save(fig, "memory")
    return out
