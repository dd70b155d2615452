"""Human-readable evidence for a crop model: per-class table, confusion and reliability plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assets.models.crop_train import Scores


def class_table(scores: Scores, classes: list[str]) -> str:
    """Markdown table of per-class precision, recall, F1 and support."""
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for i, name in enumerate(classes):
        rows.append(
            f"| {name} | {scores.precision[i]:.3f} | {scores.recall[i]:.3f} | {scores.f1[i]:.3f} | {int(scores.support[i])} |"
        )
    return "\n".join(rows)


def summary(scores: Scores) -> str:
    return (
        f"accuracy {scores.accuracy:.4f}  macro F1 {scores.macro_f1:.4f}  "
        f"ECE {scores.ece:.4f}  NLL {scores.nll:.4f}  (n={int(scores.support.sum())})"
    )


def coverage_rows(top_p: np.ndarray, correct: np.ndarray, thresholds: tuple[float, ...] = (0.0, 0.3, 0.45, 0.6, 0.75, 0.9),
                  ) -> list[dict[str, float | None]]:  # fmt: skip
    """Accuracy when the model names a crop, against how often it does (selective accuracy).

    A field whose top probability is under the threshold is reported `unknown` and valued at the
    low estimate, so a bank reads two numbers per threshold: the share of fields the model names
    (``coverage``) and how often those names are right (``accuracy``, None when it names none)."""
    top_p, correct = np.asarray(top_p, float), np.asarray(correct, bool)
    if top_p.shape != correct.shape:
        raise ValueError(f"top_p {top_p.shape} and correct {correct.shape} differ in shape")
    rows = []
    for t in thresholds:
        named = top_p >= t
        rows.append({"threshold": t, "coverage": round(float(named.mean()), 3) if named.size else 0.0,
                     "accuracy": round(float(correct[named].mean()), 3) if named.any() else None})
    return rows


def confusion_plot(scores: Scores, classes: list[str], path: str | Path, title: str = "Confusion (row-normalised)") -> Path:
    """Row-normalised confusion matrix PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = scores.confusion.astype(float)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    size = max(6.0, 0.38 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if conf[i, j]:
                ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_title(f"{title}\naccuracy {scores.accuracy:.3f}, macro F1 {scores.macro_f1:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def reliability_plot(curves: dict[str, Scores], path: str | Path) -> Path:
    """Reliability diagram (confidence vs accuracy) for one or more probability sets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, s in curves.items():
        conf, acc, _ = zip(*s.reliability)
        ax.plot(conf, acc, "o-", ms=4, label=f"{name} (ECE {s.ece:.3f})")
    ax.set_xlabel("predicted probability of top class")
    ax.set_ylabel("observed accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Reliability (15 bins)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
