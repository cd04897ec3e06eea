"""Bytes on disk, knowing nothing of the op.

``.npy`` headers (:mod:`.npy`), safetensors headers, indexes and the writer's
layout (:mod:`.safetensors`, :mod:`.safetensors_index`,
:mod:`.safetensors_writer`), the one atomic writer (:mod:`.atomic`) and the
page-cache hints (:mod:`.pagecache`). Sources and sinks, which read and write
arrays of the op's formats, are in :mod:`qdq._stream`.
"""
