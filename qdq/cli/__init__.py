"""The ``qdq`` command: ``run``, ``info``, ``quantize``, ``dequantize``, ``demo``.

:mod:`.main` parses the command line and runs the file commands (its
``main`` is the console script); :mod:`.checkpoint` runs them on
checkpoints; :mod:`.report` prints results and errors.
"""
