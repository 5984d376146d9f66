"""Device slots: each worker process of a sweep gets devices of its own.

``hydra.callbacks.orchestrator.devices`` has one entry per slot: GPU numbers
(``"0"``, ``"0,1"``) become the job's ``CUDA_VISIBLE_DEVICES``; ``"cpu:0-3"``
(cores ``0,1,2,3``; ``"cpu:0,2"``) pins the process to those CPU cores and
hides the GPUs. A job takes a slot when it starts, before TensorFlow is
imported, and its process keeps it until it exits (an advisory lock on
``.orchestrator-slots/<n>.lock`` in the sweep folder), so that a worker which
runs several jobs keeps the devices TensorFlow was started with, whatever
launcher runs it. Each run is tagged ``orchestrator.devices``.

Example::

    python -m orchestrator -m ... hydra/launcher=joblib hydra.launcher.n_jobs=2 \\
        'hydra.callbacks.orchestrator.devices=[cpu:0,cpu:1]'
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

log = logging.getLogger("orchestrator.sweep")

KEY = "hydra.callbacks.orchestrator.devices"
#: The slot this process holds: ``<sweep folder digest>:<slot>:<devices>``.
SLOT_ENV = "ORCHESTRATOR_DEVICE_SLOT"
#: The devices of the running job's slot, as written in the config (tagged ``orchestrator.devices``).
DEVICES_ENV = "ORCHESTRATOR_DEVICES"
SLOTS = ".orchestrator-slots"


@dataclass(frozen=True)
class Slot:
    """One slot: GPU numbers, or CPU cores."""

    text: str
    gpus: tuple[str, ...] = ()
    cores: tuple[int, ...] = ()

    def apply(self) -> None:
        """Give this process the slot's devices (before TensorFlow starts)."""
        os.environ[DEVICES_ENV] = self.text
        if not self.cores:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
            return
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ.setdefault("OMP_NUM_THREADS", str(len(self.cores)))
        threads = Path("/proc/self/task")
        for tid in [int(t.name) for t in threads.iterdir()] if threads.is_dir() else [0]:
            try:
                os.sched_setaffinity(tid, self.cores)
            except OSError:  # a thread that ended meanwhile
                continue


def parse(devices: Any) -> list[Slot]:
    """``["0", "1"]`` or ``["cpu:0-1", "cpu:2-3"]`` -> slots; a :class:`UserError` naming the entry."""
    if devices is None:
        return []
    if isinstance(devices, str) or not hasattr(devices, "__iter__"):
        raise UserError(
            KEY, f"must be a list with one entry per slot ([0,1] or [cpu:0-3,cpu:4-7]), got {devices!r}."
        )
    slots = []
    for entry in devices:
        text = str(entry).replace(" ", "")
        try:
            slots.append(_slot(text))
        except ValueError:
            raise UserError(
                KEY,
                f"entry {entry!r} is neither GPU numbers (0, or 0,1) nor CPU cores (cpu:0-3, cpu:0,2).",
            ) from None
    if not slots:
        raise UserError(KEY, "is an empty list; leave it null for jobs that see every device.")
    return slots


def _slot(text: str) -> Slot:
    if text.startswith("cpu:"):
        cores: list[int] = []
        for part in text.removeprefix("cpu:").split(","):
            low, _, high = part.partition("-")
            cores.extend(range(int(low), int(high or low) + 1))
        if not cores:
            raise ValueError(text)
        return Slot(text, cores=tuple(cores))
    gpus = tuple(str(int(g)) for g in text.split(","))
    return Slot(text, gpus=gpus)


def check(slots: list[Slot], workers: int | None) -> None:
    """Refuse fewer slots than jobs run at once, and CPU cores this machine does not have."""
    if not slots:
        return
    if workers is not None and workers > len(slots):
        raise UserError(
            KEY,
            f"has {len(slots)} slot(s) for {workers} jobs at once; give one entry per parallel job.",
        )
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    for slot in slots:
        missing = sorted(set(slot.cores) - available)
        if missing:
            raise UserError(
                KEY, f"{slot.text}: this machine has no CPU core {missing[0]} (it has {sorted(available)})."
            )


def take(sweep_dir: Path, slots: list[Slot]) -> Slot | None:
    """The slot of this process: the one it holds already, else the first free one (``None``: none free)."""
    digest = hashlib.sha256(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:12]
    held = os.environ.get(SLOT_ENV, "").split(":", 2)
    if len(held) == 3 and held[0] == digest:
        return _slot(held[2])
    try:
        import fcntl
    except ImportError:
        return slots[0]
    folder = Path(sweep_dir) / SLOTS
    folder.mkdir(parents=True, exist_ok=True)
    for number, slot in enumerate(slots):
        handle = os.open(folder / f"{number}.lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            continue
        # The descriptor stays open, and the slot taken, for as long as this process lives.
        os.environ[SLOT_ENV] = f"{digest}:{number}:{slot.text}"
        return slot
    log.warning("%s: every slot is taken; this job sees every device.", KEY)
    return None
