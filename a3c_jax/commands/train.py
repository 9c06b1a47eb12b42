"""Train one algorithm on one environment over several seeds.

    a3c-train --algo a2c --num-envs 16 --total-steps 500000 --seeds 0 1 2 --out runs/a2c
    a3c-train --algo a3c --workers 2 --total-steps 1000000 --tensorboard --out runs/a3c

Writes runs/NAME/{config.json, metrics.csv, returns.png, params_seed*.msgpack} (and
tensorboard/ or wandb/ when asked), shows progress while it trains (a bar on a terminal, a
plain line every few seconds otherwise) and ends with one summary line. The same command
is ``python experiments/train.py`` in a checkout.
"""

from __future__ import annotations

import sys
import traceback

from a3c_jax.commands import cli
from a3c_jax.shell import progress, directory as rundir, signals
from a3c_jax.shell.files import WriteError
from a3c_jax.shell.runner import InvalidInput, run
from a3c_jax.drivers.asynchronous.worker import WorkerError


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 bad input (nothing written), 130 / 143 interrupted by SIGINT /
    SIGTERM (everything gathered is written), 1 the run failed or diverged (run.json holds the
    error, or the divergence), or a run file could not be written (one line names it)."""
    config = cli.parse_config(argv, description=__doc__)
    if config.resume:   # the run's own config; the flags given here change it
        config = cli.parse_config(argv, description=__doc__,
                                  defaults=rundir.resume_defaults(config))
    if rundir.already_complete(config):   # nothing to train: say so rather than compile
        print(f"{config.out}: already complete ({config.total_steps} env steps per seed); "
              "give a larger --total-steps to continue it")
        return 0
    try:
        result = run(config)
    except InvalidInput as err:   # found before any work: nothing compiled or written
        print(f"error: {cli.flag_message(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # Python's own Ctrl-C, where no handler could be installed
        print("interrupted", file=sys.stderr)
        return 130
    except WriteError as err:   # a full disk, a size limit: the last checkpoint stays whole
        print(f"error: {err}; the run stopped; --resume continues from the last checkpoint "
              "once the file can be written", file=sys.stderr)
        return 1
    except WorkerError as err:
        print(f"error: the run failed: {err}\n(see {config.out}/run.json)", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - reported, with its traceback, as a failed run
        traceback.print_exc()
        print(f"error: the run failed (see {config.out}/run.json)", file=sys.stderr)
        return 1
    if result.extras.get("diverged"):
        print(f"error: {result.extras['diverged']}\n(the last finite checkpoint is kept in "
              f"{config.out})", file=sys.stderr)
        return 1
    print(progress.summary_line(result))
    return signals.exit_code_of(result.extras.get("signal")) if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
