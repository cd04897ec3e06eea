"""The op on in-memory arrays: formats, validation, layouts, the engine, parameters.

The one place that calls the compiled kernels is :mod:`.engine`; above it,
:mod:`.op` and :mod:`.codes` are the public in-memory functions and
:mod:`.foreign` hands arguments of other array libraries to the adapters
``qdq/__init__.py`` registers. Nothing here reads or writes files.
"""
