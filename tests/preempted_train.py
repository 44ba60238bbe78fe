"""train.py with a real SIGTERM sent to itself once step N has run: fault injection for tests.

    python tests/preempted_train.py N --config ... --workdir ...
    python tests/preempted_train.py N:SIGKILL ...   # kill -9 instead, 3 s after step N (so the
                                                    # checkpoint saving in the background lands)

The hook goes in through train_and_evaluate's `after_step` argument; the library reads
no environment variable for it.
"""

from __future__ import annotations

import functools
import os
import runpy
import signal
import sys
import time

from senet_jax import trainer

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train.py")


def main() -> None:
    at, _, how = sys.argv.pop(1).partition(":")
    preempt_at = int(at)

    def after_step(step: int) -> None:
        if step == preempt_at and how == "SIGKILL":
            time.sleep(3)
            os.kill(os.getpid(), signal.SIGKILL)
        elif step == preempt_at:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer.train_and_evaluate = functools.partial(
        trainer.train_and_evaluate, after_step=after_step
    )
    sys.argv[0] = TRAIN
    runpy.run_path(TRAIN, run_name="__main__")


if __name__ == "__main__":
    main()
