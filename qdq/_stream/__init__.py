"""The op over sources larger than memory: two passes, chunk by chunk.

Sources (:mod:`.sources`) are read block by block; a plan per tensor
(:mod:`.plan`: the kernel, the range pass, the parameters, the write pass)
runs the pipeline (:mod:`.pipeline`) into a sink (:mod:`.sinks`). The public
functions are :mod:`.files` (paths, arrays, memmaps) and :mod:`.chunks`
(iterables of chunks); :mod:`.analysis` is what ``qdq info`` measures.
"""
