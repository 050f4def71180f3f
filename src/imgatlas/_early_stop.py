"""The epoch loop every PyTorch training here shares (the small CNN, partial fine-tuning,
the autoencoder): train an epoch, score the validation set, keep the best weights, stop
after ``patience`` epochs without a gain, restore the best."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgatlas._progress import progress_bar


def train_with_early_stopping(module: Any, run_epoch: Callable[[int], dict[str, Any]], *,
                              max_epochs: int, patience: int, min_delta: float, desc: str,
                              progress: bool, show: tuple[str, ...] = ("train_loss",
                                                                       "val_acc")
                              ) -> tuple[list[dict[str, Any]], float]:
    """``(history, best validation loss)``. ``run_epoch(epoch)`` trains one epoch (1-based)
    and returns its row, with ``val_loss``; ``module``'s best state is restored at the end.
    ``show``: the row's figures on the progress bar."""
    best, best_state, bad, history = float("inf"), None, 0, []
    bar = progress_bar(total=max_epochs, desc=desc, unit="epoch", enable=progress)
    try:
        for epoch in range(1, max_epochs + 1):
            row = run_epoch(epoch)
            history.append(row)
            bar.set_postfix({k: f"{row[k]:.4g}" for k in show if k in row})
            bar.update(1)
            if row["val_loss"] < best - min_delta:
                best, bad = row["val_loss"], 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    break
    finally:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    return history, best


def classifier_epoch_row(epoch: int, loss_sum: float, correct: float, n: int, val_loss: float,
                         val_acc: float) -> dict[str, Any]:
    """A classifier's epoch as the history records it: mean training loss and accuracy over
    the ``n`` training samples, validation loss and accuracy."""
    return {"epoch": epoch, "train_loss": round(loss_sum / n, 5),
            "train_acc": round(correct / n, 5), "val_loss": round(val_loss, 5),
            "val_acc": round(val_acc, 5)}
