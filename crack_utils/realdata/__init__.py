"""The six public crack datasets of the real-data studies: where they come from, how to rebuild them and how
to check that a copy is the one the study used.

* :mod:`.origins` — the facts: each dataset's origin repository, pinned commit, folder and selection rule
  (the one place that holds them; ``data/README.md`` tells them in prose);
* :mod:`.convert` — labels to binary masks (CFD ``.mat``, JPEG labels thresholded at 127, Supervisely class
  maps), the mask PNG encoding, and the ``meta.csv`` columns;
* :mod:`.select` — which patches of the cropped sets are kept (grid patches only, at most 8 or 6 per photo,
  drawn with seed 20240601);
* :mod:`.checksums` — the committed checksum list (``data/real_data_sha256.csv.gz``) and the comparison of
  a copy against it;
* :mod:`.verify` — the report of that comparison per dataset, and which study configs a matching copy
  reproduces: ``python -m crack_utils.realdata.verify <root>`` (``make verify-data DATA=<root>``);
* :mod:`.build` — rebuilds the six datasets from their origins and verifies them:
  ``python -m crack_utils.realdata.build --out <folder>`` (``make real-data OUT=<folder>``).

Nothing here is used by the notebooks: a study reads whatever folder its config names.
"""
