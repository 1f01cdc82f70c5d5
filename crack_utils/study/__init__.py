"""The study layer: how a study's notebook runs are laid out on disk, planned as a graph, skipped when
up to date, executed (one process or a Dask cluster), watched and published.

* :mod:`.config` — study configs: YAML merged over the defaults, the rules between values, the trainings
  of a study; :mod:`.config_schema` — what each single value may be (the only check of single values);
* :mod:`.layout` — the one owner of the results layout (run tags, run folders, checkpoint folders,
  the published file list);
* :mod:`.freshness` — when a finished run is up to date (its fingerprint);
* :mod:`.watch` — live progress of the running trainings;
* :mod:`.executor` — executes the run graph in order, or concurrently on Dask;
* :mod:`.publishing` — the headline files and the HTML index of a study;
* :mod:`.notebook_run` — executing one run: papermill into an atomic run folder with its metadata, in a
  kernel whose output is discarded (:mod:`.quiet_kernel`) and whose stop records are dropped
  (:mod:`.kernel_logs`);
* :mod:`.lock` — one pipeline per study at a time;
* :mod:`.committed` — what the committed copy of a study keeps (compressed tables, notebooks without
  figures) and the size limits of the tracked tree.

:mod:`crack_utils.pipeline` is the command line on top (``python -m crack_utils.pipeline``).
"""
