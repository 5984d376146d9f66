"""Keras callbacks that write files, with relative paths placed in the run's output folder.

``filepath: best.keras`` lands in ``outputs/<date>/<time>/best.keras``, next to
the run's other files, so that two runs never overwrite each other's files.
What they write is kept among the run's artifacts too (after every stage):
``model_checkpoint/``, ``logs/history.csv``, ``tensorboard/``::

    callbacks:
      checkpoint: {name: model_checkpoint, filepath: "ckpt/{epoch:02d}-{loss:.2f}.keras"}
      csv: {name: csv_logger, filename: history.csv}
"""

from pathlib import Path

from orchestrator import forwards_to, hookimpl


def in_output_dir(context, path: str, folder: bool = False) -> str:
    """``path`` unchanged if absolute, else inside ``context.output_dir``.

    The folder it needs is created: ``path`` itself when ``folder``, else its parent.
    """
    full = Path(path) if Path(path).is_absolute() else Path(context.output_dir) / path
    (full if folder else full.parent).mkdir(parents=True, exist_ok=True)
    return str(full)


@forwards_to("keras.callbacks.ModelCheckpoint")
def model_checkpoint(context, filepath: str = "model_checkpoint/best.keras", **kwargs):
    """``keras.callbacks.ModelCheckpoint`` writing under the output folder.

    The filepath may hold Keras's templates: ``"ckpt/{epoch:02d}-{loss:.2f}.keras"``.
    """
    import keras

    path = in_output_dir(context, filepath)
    context.watch_artifact(Path(path).parent, "model_checkpoint")
    return keras.callbacks.ModelCheckpoint(path, **kwargs)


@forwards_to("keras.callbacks.CSVLogger")
def csv_logger(context, filename: str = "history.csv", **kwargs):
    """``keras.callbacks.CSVLogger`` writing under the output folder."""
    import keras

    path = in_output_dir(context, filename)
    context.watch_artifact(path, "logs")
    return keras.callbacks.CSVLogger(path, **kwargs)


@forwards_to("keras.callbacks.BackupAndRestore")
def backup_and_restore(context, backup_dir: str = "backup", **kwargs):
    """``keras.callbacks.BackupAndRestore`` keeping its backup under the output folder."""
    import keras

    return keras.callbacks.BackupAndRestore(in_output_dir(context, backup_dir, folder=True), **kwargs)


@forwards_to("keras.callbacks.TensorBoard")
def tensorboard(context, log_dir: str = "tensorboard", **kwargs):
    """``keras.callbacks.TensorBoard`` logging under the output folder."""
    import keras

    path = in_output_dir(context, log_dir, folder=True)
    context.watch_artifact(path, "tensorboard")
    return keras.callbacks.TensorBoard(path, **kwargs)


@hookimpl
def orchestrator_register_callbacks(registry):
    registry.add("model_checkpoint", model_checkpoint)
    registry.add("csv_logger", csv_logger)
    registry.add("backup_and_restore", backup_and_restore)
    registry.add("tensorboard", tensorboard)
