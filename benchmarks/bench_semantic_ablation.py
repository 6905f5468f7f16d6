"""The semantic preset's ablation: each model's temperature chosen on validation photos, then scored once.

    python benchmarks/bench_semantic_ablation.py --val POOL320 --eval pool/eval \\
        --models default runs/wide-ft runs/semantic-ft runs/semantic-new runs/semantic-long runs/paper-new [--alpha 0.25]

For every model (a name, file or run folder):

1. its temperature is chosen on the validation photos of ``--val`` (the split
   training holds out, a hash of each name) by the rule every trained model now
   uses (``evaluation/temperature.py``: the best rebalanced AuC among 0.38, 0.5,
   0.7 and 1.0 that keeps 80–110% of the originals' colourfulness);
2. it is scored once on ``--eval`` with ``colorunet evaluate``'s code at that
   temperature, and again with the anti-invention decode: the calibrated prior,
   the distribution divided by w(b)^α (w: the model's rebalancing weights), a
   per-class logit bias −α·log w (docs/semantic.md; α chosen there on validation
   photos).

Models named in ``--own-temperature`` are also scored plainly at the temperature
their file carries, where the rule picks another (the shipped model as it ships).
Results are cached in ``--work`` (one JSON per model file, photos and decode),
so adding a model scores only that one. Prints one table: the validation choice, then
``--eval``'s rebalanced AuC, PSNR, colourfulness (and its share of the
originals') and invented colour.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from colorunet.core.atomic import write_text_atomic  # noqa: E402
from colorunet.evaluation.evaluate import evaluate, evaluation_photos  # noqa: E402
from colorunet.evaluation.temperature import choose_temperature  # noqa: E402
from colorunet.inference.pipeline import get_model  # noqa: E402


def cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    write_text_atomic(path, json.dumps(value, indent=1))
    return value


def cache_key(model: str, *parts) -> str:
    """The model (its file's path and modification time: a retrained run is scored again) and what it is scored on."""
    from colorunet.core.weights import resolve_model_path

    path, _ = resolve_model_path(model)
    ident = [str(path.resolve()), str(path.stat().st_mtime_ns), *map(str, parts)]
    return hashlib.sha256("\n".join(ident).encode()).hexdigest()[:10]


def calibrated_bias(model, alpha: float) -> np.ndarray:
    m = get_model(model)
    lam = (m.metadata.get("train_config") or {}).get("rebalance_lambda", 0.5)
    return (-alpha * np.log(m.quantizer.rebalance_weights(lam))).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", type=Path, required=True, help="the training folder whose validation split chooses T")
    p.add_argument("--eval", type=Path, default=Path("pool/eval"))
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--alpha", type=float, default=0.25)
    p.add_argument("--work", type=Path, default=Path("runs/ablation"))
    p.add_argument("--val-fraction", type=float, default=0.1, help="the validation split's share (the trainer's --val-fraction)")
    p.add_argument("--own-temperature", nargs="*", default=[], metavar="MODEL",
                   help="also score these models at their own temperature (the one the file carries) where the rule picks "
                        "another: the shipped model as it ships")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    val = evaluation_photos(args.val, "validation", args.val_fraction)
    ev_photos = evaluation_photos(args.eval)
    print(f"# temperatures chosen on {len(val)} validation photos of {args.val}; "
          f"scored on {len(ev_photos)} photos of {args.eval}")
    print(f"{'model':<22}{'T':>5}{'val AuC':>9} | {'decode':<10}{'rebal AuC':>10}{'PSNR':>7}{'colourful':>14}{'invented':>10}")
    for model in args.models:
        name = Path(model).name
        key = cache_key(model, args.val.resolve(), args.val_fraction)
        choice = cached(args.work / f"{name}-{key}-temperature.json",
                        lambda: (lambda c: c.to_metadata() | {"temperature": c.temperature})(choose_temperature(val, model)))
        t = choice["temperature"]
        val_auc = next(s["auc_rebalanced"] for s in choice["scores"] if s["temperature"] == t)
        decodes = [(t, "plain", None), (t, f"α={args.alpha:g}", calibrated_bias(model, args.alpha))]
        own = get_model(model).temperature
        if model in args.own_temperature and own != t:
            decodes.append((own, f"own T={own:g}", None))
        for i, (temp, decode, bias) in enumerate(decodes):
            key = cache_key(model, args.eval.resolve(), temp, decode)
            m = cached(args.work / f"{name}-{key}-eval.json",
                       lambda: evaluate(ev_photos, model, temp, progress=False, bias=bias).metrics)
            share = 100 * m["colorfulness"] / m["colorfulness_true"]
            label = f"{name:<22}{t:>5g}{val_auc:>9.2f}" if i == 0 else " " * 36
            print(f"{label} | {decode:<10}{m['auc_rebalanced']:>10.2f}{m['psnr']:>7.2f}{m['colorfulness']:>7.1f} ({share:3.0f}%)"
                  f"{m['false_color']:>9.1f}%", flush=True)


if __name__ == "__main__":
    main()
