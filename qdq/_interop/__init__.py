"""Adapters for other array libraries' inputs, registered by ``qdq/__init__.py``.

:mod:`.xarray` (``DataArray`` in, ``DataArray`` out) and :mod:`.dlpack`
(torch tensors, JAX arrays and anything with ``__dlpack__``, read without a
copy). The Dask adapter is :mod:`qdq.dask` itself.
"""
