"""Resume: a killed run, started again with the same command, goes on where it stopped.

Every run keeps in its output folder what it needs to continue,
``resume/state.json``: the stage it is in, the epochs done, the checkpoint that
holds the model and the optimizer, the random number generators (Python,
NumPy, the model's dropout and augmentation seed generators), the state of the
callbacks (EarlyStopping's patience counter and best value,
ReduceLROnPlateau's cooldown) and the metrics so far; saved in the middle of
an epoch (``trainer.checkpoint_every_batches``), also the batches done and the
running values of the epoch's metrics. It is rewritten, file by file and
atomically, whenever a checkpoint is written and whenever a stage ends, so a
kill at any moment leaves the last complete state.

An index in the folder the command runs from, ``.orchestrator/runs/<key>.json``
(the key: a hash of the command's overrides and, in a sweep, the sweep id),
names the command's latest run: its output folder, MLflow run id and status. A
run holds a lock on its entry while it lives, so a second copy of the same
command running at the same time starts its own run.

Started again, a command whose latest run is unfinished (``RUNNING`` after a
SIGKILL, an out-of-memory kill or a lost machine; ``KILLED`` after Ctrl-C)
continues it in the same output folder and the same MLflow run; ``resume=false``
starts a new run instead. A run that ``FINISHED`` or ``FAILED`` with an error is
not continued: the command starts a new run.

Example::

    python -m orchestrator +experiment=mnist trainer.epochs=20   # killed in epoch 7
    python -m orchestrator +experiment=mnist trainer.epochs=20   # goes on after epoch 6
"""
