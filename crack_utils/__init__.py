"""Helpers of the crack-loss study: what the notebooks in ``notebooks/`` call. A map, by concern
(a test keeps it complete):

* data — finding, checking and preparing image/mask pairs (notebook 01):
  :mod:`.data_source`, :mod:`.datasets`, :mod:`.synthetic`, :mod:`.validation`, :mod:`.screening`,
  :mod:`.manifest`, :mod:`.splitting`, :mod:`.preprocess`, :mod:`.data_report`;
* learning — the targets, model, losses and training loop (notebooks 02-03):
  :mod:`.distance`, :mod:`.skeleton_tube`, :mod:`.soft_skeleton`, :mod:`.augment`, :mod:`.loader`,
  :mod:`.device_batches`, :mod:`.model`, :mod:`.losses`, :mod:`.training`, :mod:`.training_records`
  (the parameters and summary a training hands on);
* measuring — scoring a trained model (notebook 04):
  :mod:`.evaluation`, :mod:`.metrics`, :mod:`.claims`;
* reporting — Table 1, Figure 2 and the summaries beyond them (notebooks 05-06):
  :mod:`.report`, :mod:`.report_inputs`, :mod:`.tables`, :mod:`.stats`, :mod:`.figures`,
  :mod:`.training_length`, :mod:`.generalization`, :mod:`.overview` (``results/index.html``, the page a reader
  opens first);
* study — configs and running the notebooks as a study: the :mod:`.study` sub-package (configs and their
  schema, layout, freshness, executor, watch, publishing, lock, notebook runs and their kernels, committed
  copies), :mod:`.pipeline` (its command line) and :mod:`.notebook_params` (the notebooks' parameter check);
* real data — where the six public datasets of the real-data studies come from, rebuilding them from their
  origins and checking a copy against the committed checksum list (``make real-data``, ``make
  verify-data``; not used by the notebooks): the :mod:`.realdata` sub-package;
* tools — experiments and chores around the study, imported by no notebook and by no concern above, each
  a command (``python -m crack_utils.tools.<name>``): the :mod:`.tools` sub-package — benchmarks, the
  instruction-set check, loss terms of trained models, the compact data a GPU call carries and its call
  plan, the wall-time budget planner, migrations of committed studies;
* environment: :mod:`.torchvision_compat` (keeps segmentation-models-pytorch importable where the CUDA build of
  torchvision meets a CPU-only torch);
* shared by all of them: :mod:`.paper` (the paper's protocol in numbers: the one place that holds them),
  :mod:`.paths` (paths relative to the repository), :mod:`.progress` (progress bars), :mod:`.run_metadata`
  (what produced a result).

The study layer, the real-data tools and the tools are sub-packages. The four concerns stay flat on purpose:
the notebooks import most of their modules as ``from crack_utils import losses, training, ...``, and every
committed run's fingerprint includes its notebook's bytes (:mod:`.study.freshness`), so moving them would
mark every committed study out of date and make a rerun retrain it (hours on a CPU) for a change of import
paths alone; their few helpers stay beside them, so that a concern reads in one place (the map above).
"""
