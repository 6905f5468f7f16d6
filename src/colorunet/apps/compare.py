"""``colorunet compare``: train contenders for the same wall-clock budget and score them side by side.

The question the ColorUNet paper answers in words — does classification with
rebalancing beat L2 regression, can a 0.13M-parameter U-Net stand in for Zhang
et al.'s 32M-parameter network, what does the temperature trade — answered
with numbers on the user's own photos:

1. Each contender (a preset plus overrides) trains for the same wall-clock
   budget on this machine (``TrainConfig.time_budget_s``: the learning-rate
   schedule runs on the clock, so every contender gets a full warm-up and
   decay however many steps it manages; a bigger network gets fewer steps —
   the trade-off the paper is about). Loading the photos is not counted.
2. Each trained model is evaluated (``evaluation.evaluate``) on the same held-out
   photos at every temperature given (classification models) or once
   (regression), next to the gray and mean-color baselines.
3. ``results.md`` (a table), ``results.json`` and plots: metrics against the
   temperature, and against parameters and inference time.

A compare folder can be run again: finished runs are kept, so a rerun with
more temperatures only evaluates.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_path, write_text_atomic
from ..evaluation.evaluate import DEFAULT_EVAL_SIZE, evaluate, evaluation_photos
from ..training.trainer import Trainer, resolve_configs

#: The default field: the paper, its L2 twin, Zhang et al.'s network, and the paper
#: without rebalancing (λ = 1) and without its augmentation.
DEFAULT_CONTENDERS = (
    "paper",
    "paper-regression",
    "eccv16",
    "paper-no-rebalancing=paper,lambda=1",
    "paper-no-augment=paper,augment=false",
)
DEFAULT_TEMPERATURES = (0.2, 0.38, 0.7, 1.0)
#: Metrics in the table, best direction, and how to print them.
TABLE_METRICS = (
    ("auc", "AuC", "%.2f"),
    ("auc_rebalanced", "rebal. AuC", "%.2f"),
    ("psnr", "PSNR", "%.2f"),
    ("ssim", "SSIM", "%.3f"),
    ("colorfulness", "colourful.", "%.1f"),
    ("delta_colorfulness", "Δcolourful.", "%.1f"),
    ("false_color", "invented %", "%.1f"),
)
_OVERRIDE_NAMES = {"lambda": "rebalance_lambda", "classes": "num_classes", "soft": "target"}
_MODEL_KEYS = ("widths", "num_classes", "head", "arch", "color_space")


@dataclass
class Contender:
    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> "Contender":
        """``NAME`` (a preset) or ``NAME=PRESET[,key=value…]``, e.g. ``no-aug=paper,augment=false``."""
        name, _, rest = spec.partition("=")
        if not rest:
            return cls(name, name)
        preset, *pairs = rest.split(",")
        overrides = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"contender {spec!r}: expected key=value, got {pair!r}")
            overrides[_OVERRIDE_NAMES.get(key, key).replace("-", "_")] = _value(value)
        return cls(name, preset, overrides)


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "/" in text:  # widths=32/64/128
        return tuple(int(t) for t in text.split("/"))
    return text


@dataclass
class CompareConfig:
    budget_s: float = 300.0
    crop: int = 64
    batch_size: int = 32
    load_size: int = 256
    workers: int = 0
    seed: int = 0
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    working_size: int = 256
    eval_size: int = DEFAULT_EVAL_SIZE


def _configs(c: Contender, cc: CompareConfig):
    model_over = {k: v for k, v in c.overrides.items() if k in _MODEL_KEYS}
    train_over = {k: v for k, v in c.overrides.items() if k not in _MODEL_KEYS}
    base = {
        "crop": cc.crop,
        "batch_size": cc.batch_size,
        "load_size": max(cc.load_size, cc.crop),
        "seed": cc.seed,
        "workers": cc.workers,
        "time_budget_s": cc.budget_s,
        "checkpoint_every": 10**9,
    }
    return resolve_configs(c.preset, model_over, base | train_over)


def _log_rows(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def inference_ms(model_spec: str, size: int = 256, repeats: int = 20) -> float:
    """Fastest of ``repeats`` runs of the network at size², in ms, as ``colorize`` runs it (fused, bf16
    where it pays off). The minimum, not the median: on a shared machine, noise only ever adds time."""
    import numpy as np

    from ..inference.pipeline import get_model, predict_scores

    m = get_model(model_spec)
    small = np.random.default_rng(0).uniform(0, 1, (size, size)).astype(np.float32)
    predict_scores(m, small)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predict_scores(m, small)
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def compare(
    photos: Path, eval_dir: Path, out: Path, contenders: list[Contender], cc: CompareConfig, progress: bool = True
) -> dict:
    """Train, evaluate and report; returns the results (also in ``out/results.json``)."""
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must differ: {names}")
    # every contender's settings, checked before the first one trains: a typo in the last must not cost the others' time
    trainers = {c.name: Trainer(photos, out / "runs" / c.name, *_configs(c, cc), progress=progress) for c in contenders}
    eval_photos = evaluation_photos(eval_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in ("gray", "mean-color"):
        ev = evaluate(eval_photos, name, progress=False, working_size=cc.working_size, eval_size=cc.eval_size)
        rows.append({"contender": name, "kind": "baseline", "parameters": 0, "temperature": None} | _metrics(ev.metrics))
    runs: dict[str, dict] = {}
    for c in contenders:
        run = out / "runs" / c.name
        trainer = trainers[c.name]
        mc, cfg = trainer.model_config, trainer.cfg
        if (run / "model.safetensors").exists() and (run / "config.json").exists():
            kept = json.loads((run / "config.json").read_text())
            wanted = {"model_config": mc.to_dict(), "train_config": asdict(cfg)}
            for part in ("model_config", "train_config"):
                differ = sorted(
                    k for k, v in wanted[part].items() if k != "workers" and json.loads(json.dumps(v)) != kept[part].get(k)
                )
                if differ:
                    raise ValueError(f"{run}: trained with other settings ({', '.join(differ)}); delete it or use another --out")
            log(f"colorunet: {c.name}: already trained, keeping {run}")
        else:
            if run.exists():  # a run cut off before its end: a budgeted run cannot resume, start it again
                import shutil

                shutil.rmtree(run)
            log(f"colorunet: {c.name}: training for {cc.budget_s:g} s")
            trainer.run()
        resolved = json.loads((run / "config.json").read_text())
        rows_log = _log_rows(run)
        steps = int(rows_log[-1]["step"])
        runs[c.name] = {
            "preset": c.preset, "overrides": c.overrides, "steps": steps, "parameters": resolved["parameters"],
            "train_s": float(rows_log[-1]["elapsed_s"]), "images_seen": steps * resolved["train_config"]["batch_size"],
            "final_val_loss": next((float(r["val_loss"]) for r in reversed(rows_log) if r.get("val_loss")), None),
            "inference_ms_256": inference_ms(str(run)), "head": resolved["model_config"]["head"],
        }
        temps = cc.temperatures if runs[c.name]["head"] == "classification" else (None,)
        for t in temps:
            ev = evaluate(eval_photos, str(run), temperature=t, progress=False, working_size=cc.working_size,
                          eval_size=cc.eval_size)
            rows.append(
                {"contender": c.name, "kind": "model", "parameters": runs[c.name]["parameters"], "temperature": t}
                | _metrics(ev.metrics)
            )
            log(f"colorunet: {c.name} T={t}: AuC {ev.metrics['auc']:.2f}, rebalanced {ev.metrics['auc_rebalanced']:.2f}, "
                f"colorfulness {ev.metrics['colorfulness']:.1f}")
    results = {
        "config": asdict(cc), "photos": str(photos), "eval_photos": str(eval_dir), "eval_count": len(eval_photos),
        "runs": runs, "rows": rows,
    }
    write_text_atomic(out / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    write_text_atomic(out / "results.md", results_markdown(results))
    plot_results(results, out)
    return results


def _metrics(m: dict) -> dict:
    return {k: m[k] for k, _, _ in TABLE_METRICS} | {"colorfulness_true": m["colorfulness_true"]}


def best_rows(results: dict, key: str = "auc_rebalanced") -> dict[str, dict]:
    """Each trained contender's row at its best temperature by ``key`` (chosen on the evaluation photos
    themselves); a regression model's only row."""
    best: dict[str, dict] = {}
    for r in results["rows"]:
        if r["kind"] == "model" and (r["contender"] not in best or r[key] > best[r["contender"]][key]):
            best[r["contender"]] = r
    return best


def results_markdown(results: dict) -> str:
    cc = results["config"]
    lines = [
        f"Trained on `{results['photos']}` for {cc['budget_s']:.0f} s of wall-clock each ({cc['crop']}² crops, batch "
        f"{cc['batch_size']}); "
        f"evaluated on the {results['eval_count']} photos of `{results['eval_photos']}` at a working size of "
        f"{cc['working_size']}, "
        f"scored at a short side of {cc.get('eval_size') or 'full resolution'}. "
        f"Originals' colorfulness: {results['rows'][0]['colorfulness_true']:.1f}.",
        "",
        "| contender | parameters | steps | train s | infer ms (256²) | T | " + " | ".join(h for _, h, _ in TABLE_METRICS) + " |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(TABLE_METRICS),
    ]
    for r in results["rows"]:
        run = results["runs"].get(r["contender"], {})
        cells = [r["contender"], f"{r['parameters']:,}" if r["parameters"] else "-", str(run.get("steps", "-")),
                 f"{run['train_s']:.0f}" if run else "-", f"{run['inference_ms_256']:.1f}" if run else "-",
                 "-" if r["temperature"] is None else f"{r['temperature']:g}"]
        cells += [fmt % r[k] for k, _, fmt in TABLE_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(results: dict, out: Path) -> None:
    """metrics_vs_temperature.png and metric_vs_cost.png (needs matplotlib, the 'eval' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return
    keys = (("auc", "AuC (%)"), ("auc_rebalanced", "rebalanced AuC (%)"), ("colorfulness", "colorfulness"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (k, label) in zip(axes, keys):
        by: dict[str, list] = {}
        for r in results["rows"]:
            by.setdefault(r["contender"], []).append(r)
        for name, rs in by.items():
            if rs[0]["temperature"] is None:
                ax.axhline(
                    rs[0][k], linestyle="--", linewidth=1, label=name, color="gray" if rs[0]["kind"] == "baseline" else None
                )
            else:
                ax.plot([r["temperature"] for r in rs], [r[k] for r in rs], marker="o", label=name)
        if k == "colorfulness":
            ax.axhline(results["rows"][0]["colorfulness_true"], color="black", linewidth=1, label="originals")
        ax.set_xlabel("temperature T")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    _save_fig(fig, out / "metrics_vs_temperature.png")
    plt.close(fig)

    points = best_rows(results)  # a regression model has one row, so it is its own best
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (x_of, xlabel) in zip(axes, ((lambda n: results["runs"][n]["parameters"], "parameters"),
                                         (lambda n: results["runs"][n]["inference_ms_256"], "network ms per 256² photo"))):
        for name, r in points.items():
            ax.scatter(x_of(name), r["auc_rebalanced"])
            ax.annotate(
                f"{name} (T={r['temperature']:g})" if r["temperature"] else name, (x_of(name), r["auc_rebalanced"]), fontsize=7
            )
        for r in results["rows"]:
            if r["kind"] == "baseline":
                ax.axhline(r["auc_rebalanced"], color="grey", linestyle="--", linewidth=1)
                ax.text(
                    0.01,
                    r["auc_rebalanced"],
                    r["contender"],
                    fontsize=7,
                    color="grey",
                    transform=ax.get_yaxis_transform(),
                    va="bottom",
                )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("rebalanced AuC (%), best T")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_fig(fig, out / "metric_vs_cost.png")
    plt.close(fig)


def _save_fig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def parse_temperatures(text: str) -> tuple[float, ...]:
    try:
        ts = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--temperatures: expected comma-separated numbers, got {text!r}") from None
    from ..core.values import check_temperature

    # the range colorize accepts: a temperature it refuses would fail only after all the training
    return tuple(check_temperature(t, "--temperatures") for t in ts)
