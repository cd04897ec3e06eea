"""qdq's file input and output: .npy headers, sources, sinks, the atomic writer.

Data flows one way: a source (:mod:`.sources`) is read block by block, the
pipeline computes, a sink (:mod:`.sinks`) writes through the one atomic
writer (:mod:`.atomic`). Nothing here computes the op.
"""
