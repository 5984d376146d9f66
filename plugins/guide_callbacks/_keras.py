"""The guide's custom callback ``LossHistory``; the ``loss_history`` factory imports it when a run uses it."""

import csv
from pathlib import Path

import keras


class LossHistory(keras.callbacks.Callback):
    """Records the loss after every batch, as the guide's ``LossHistory`` does.

    Keras reports the running mean of the epoch's loss at each batch; that is
    what is recorded. At the end of training the values are written to ``path``
    (CSV: ``epoch,batch,loss``) when one is given.

    Example::

        history = LossHistory()
        model.fit(x, y, callbacks=[history])
        history.per_batch_losses[:3]
    """

    def __init__(self, path: str | None = None):
        super().__init__()
        self.path = path
        self.per_batch_losses: list[float] = []
        self.rows: list[tuple[int, int, float]] = []
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.per_batch_losses = []
        self.rows = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", float("nan")))
        self.per_batch_losses.append(loss)
        self.rows.append((self._epoch, batch, loss))

    def on_train_end(self, logs=None):
        if self.path is None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["epoch", "batch", "loss"])
            writer.writerows(self.rows)
