"""The compiled modules: every loop of qdq, behind a Python layer that validates.

:mod:`.kernels` (the op, its range and parameters, codes, gradient, error
statistics), :mod:`.histogram` (calibration's exact histograms),
:mod:`.dlpack` (DLPack capsules to and from NumPy), :mod:`.bufcache` (fresh
outputs from freed buffers) and :mod:`.testing` (the scalar converters, for
the exhaustive tests). Their C lives in ``csrc/``. Only :mod:`qdq._core.engine`
calls the kernels (and :mod:`qdq._io.pagecache` the file-range sync).
"""
