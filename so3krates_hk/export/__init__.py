"""Exported SO3krates models for MD engines that decompose the domain themselves.

* :mod:`so3krates_hk.export.lammps_jax`: a ``lammps-jax`` bundle for LAMMPS ``pair_style jax/kk``.
* :mod:`so3krates_hk.deploy`: a chemtrain-deploy exporter (``chemtrain.deploy.exporter.Exporter``).

Both wrap :func:`so3krates_hk.export.energy.per_atom_energy_fn` of a model read by
:func:`so3krates_hk.export.model_file.load_model`. SO3LR is refused with the reason
(:func:`so3krates_hk.export.model_file.so3lr_refusal`).
"""
