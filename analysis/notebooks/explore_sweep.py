# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore a sweep
#
# After a sweep, four questions: **what was best**, **which hyperparameters mattered**, **where
# should the next search look**, and **did the search converge**. Everything below reads the
# Parquet results alone (no Ray needed). Run it on any results directory with
#
# ```bash
# papermill analysis/notebooks/explore_sweep.ipynb out.ipynb \
#     -p results_dir results -p sweep digits-demo
# ```
#
# `caviar report RESULTS_DIR` writes the same answers as one HTML file.

# %% tags=["parameters"]
results_dir = "results"
sweep = None  # None: the only sweep in results_dir
objective = None  # None: val_accuracy (max) when recorded, else val_loss (min)
mode = None

# %%
# %matplotlib inline
# ruff: noqa: E402, B018, RUF100  (notebook style: imports follow the parameters cell)
import pandas as pd
from IPython.display import display

import analysis

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)

if sweep is None:
    (sweep,) = analysis.sweeps_in(results_dir)  # several sweeps: set `sweep` explicitly
trials = analysis.load_trials(results_dir, sweep)
epochs = analysis.load_epochs(results_dir, sweep)
if objective is None:
    objective, mode = analysis.default_objective(trials)
mode = mode or ("min" if "loss" in objective else "max")
scales = analysis.resolve_scales(trials, exclude=(objective,))
runs = trials["run_id"].nunique()
print(f"{sweep}: {len(trials)} trials in {runs} run(s); objective {objective} ({mode})")
print("searched:", scales, "(from the stored space)" if "space" in trials.attrs else "(inferred)")
trials["status"].value_counts()

# %% [markdown]
# ## What was best?
#
# Only trials that finished (`status == "ok"`) rank: a diverged trial's last accuracy is not a
# model anyone would use.

# %%
top = analysis.best(trials, 10, objective, mode)
top[["trial_id", "round", *scales, objective]]

# %%
analysis.plot_learning_curves(trials, epochs, objective, k=5, mode=mode) if len(epochs) else None

# %% [markdown]
# ## Which hyperparameters mattered?
#
# fANOVA over a random forest, in the coordinates sampling used: log10 for log-scaled
# parameters (the learning rate), log10(1 − β) for reverse-log ones (momentum), categories for
# choices. On the raw scale, the top decade of a learning rate would swamp everything else.

# %%
ranking = analysis.importance(trials, objective, scales, mode=mode)
ranking

# %%
analysis.plot_importance(ranking)

# %% [markdown]
# The objective against each searched hyperparameter, on its sampling scale (β is labelled
# 0.9, 0.99, 0.999: equal steps of 1 − β).

# %%
for name in ranking["parameter"]:
    display(analysis.plot_objective_vs(trials, name, objective, scale=scales[name], mode=mode))

# %% [markdown]
# ## Where should the next search look?
#
# The range the best 10 % of trials span, per parameter. When the best trials crowd against an
# edge of the searched range (`at_edge`), widen that side before zooming in.

# %%
analysis.next_bounds(trials, objective, scales, mode=mode)

# %%
analysis.plot_parallel_coordinates(trials, objective, scales, mode=mode)

# %% [markdown]
# ## Did the search converge?
#
# The running best in the order trials finished; for coarse-to-fine sweeps, one row per round
# and the zoom of the bounds (skipped for single-round sweeps).

# %%
analysis.plot_best_so_far(trials, objective, mode)

# %%
analysis.round_summary(trials, objective, mode)

# %%
zoom = analysis.plot_rounds(trials, analysis.load_rounds(results_dir, sweep), scales)
zoom if zoom is not None else print("one round only: nothing zoomed")

# %% [markdown]
# ## BatchNorm and the learning-rate range
#
# When the sweep compares `batchnorm: true` and `false`: how many decades of learning rate reach
# at least 95 % of the best accuracy in each arm (`sweeps/examples/bn_vs_nobn.yaml`).

# %%
if "batchnorm" in trials and trials["batchnorm"].nunique() > 1 and "lr" in trials:
    widths = analysis.lr_range_width(trials, objective, "batchnorm", 0.95, mode=mode)
    display(widths)
    display(analysis.plot_lr_range(trials, widths, objective))
else:
    print("batchnorm is not compared in this sweep")
