"""Tools around the study: experiments and chores that no notebook imports and no module of the study's
concerns depends on. Each is a command, ``python -m crack_utils.tools.<name>`` (docs/speed.md, docs/gpu.md,
docs/reproducibility.md say when to use which):

* :mod:`.bench` — the speed figures of one training on this machine (``make bench``);
* :mod:`.concurrency` — aggregate images/s of K trainings at once on one device (the GPU call);
* :mod:`.budget` — fitting a study into a wall-time budget from those figures (the GPU call's plan);
* :mod:`.isa_check` — whether the CPU instruction set changes a training's last bits;
* :mod:`.loss_terms` — the terms of a composite loss on trained models (clDice's two terms);
* :mod:`.compact_data` — the prepared arrays as compact JPEG/bit-packed data a device call carries;
* :mod:`.device_call` — how the working tree and the carried files split into device calls;
* :mod:`.migrate` — migrations of committed studies (protocol lines, comparisons from per-image CSVs).
"""
