"""Ranges from data that arrives in chunks: exact min/max and exact histograms.

:mod:`.range` (:class:`qdq.RangeTracker`), :mod:`.histogram`
(:class:`qdq.HistogramTracker`), :mod:`.methods` (the calibration methods over
a histogram) and :mod:`.calibrate` (:func:`qdq.calibrate`).
"""
