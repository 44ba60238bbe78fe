"""train.py with a real SIGTERM sent to itself once step N has run: fault injection for tests.

    python tests/preempted_train.py N --config ... --workdir ...

The hook goes in through train_and_evaluate's `after_step` argument; the library reads
no environment variable for it.
"""

from __future__ import annotations

import functools
import os
import runpy
import signal
import sys

from senet_jax import trainer

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")


def main() -> None:
    preempt_at = int(sys.argv.pop(1))

    def after_step(step: int) -> None:
        if step == preempt_at:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer.train_and_evaluate = functools.partial(
        trainer.train_and_evaluate, after_step=after_step
    )
    sys.argv[0] = TRAIN
    runpy.run_path(TRAIN, run_name="__main__")


if __name__ == "__main__":
    main()
