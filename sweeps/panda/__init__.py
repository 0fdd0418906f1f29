"""Panda mode: babysit one model (or a few) instead of sampling many; see docs/panda.md.

`_babysitter` judges each period (plain values), `_trial` trains a model period by period inside
one Ray Tune trial, `_run` runs the whole babysitting (`run_panda`), `_record` builds and reads
back its rows and `_recorder` writes them as periods arrive. The runner needs only `run_panda`;
importing the package imports neither torch nor Ray (the trial and the recorder load them when
a run starts).
"""

from sweeps.panda._run import run_panda

__all__ = ["run_panda"]
