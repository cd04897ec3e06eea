"""Build qdq's compiled kernels.

Environment switches:

QDQ_OPENMP=auto|0|1
    auto (default) probes the compiler for OpenMP and builds without it when
    the probe fails; 0 never uses it; 1 requires it.
QDQ_MARCH=<arch>
    adds -march=<arch> (for example ``native`` for a local build). Never on by
    default: wheels must run on any CPU of their platform. The kernels choose
    AVX2/F16C at run time anyway.
QDQ_SANITIZE=address,undefined
    builds with these sanitizers (-fsanitize=..., -O1, frame pointers).
QDQ_DEBUG_CYTHON=1
    turns Cython's bounds and wraparound checks back on.
QDQ_STRIP=auto|0
    auto (default) strips the symbol tables from the compiled modules (``-Wl,-s`` on
    Linux, ``-Wl,-x`` on macOS), except in debug builds (``build_ext --debug``,
    QDQ_DEBUG_CYTHON=1) and sanitizer builds, which keep them; 0 never strips.
"""

import glob
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _env(name, default=""):
    return os.environ.get(name, default).strip()


_OMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"
_PLAIN_PROBE = "int main(void) { return 0; }\n"


def _compiler_accepts(compiler, flags, source=_OMP_PROBE):
    """Whether a tiny program (by default an OpenMP one) compiles and links with these flags."""
    tmp = tempfile.mkdtemp(prefix="qdq-probe-")
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _strip_flags(debug):
    """Linker flags that drop the symbol tables; none for debug and sanitizer builds."""
    if (_env("QDQ_STRIP", "auto").lower() in ("0", "no", "false", "off") or debug
            or _env("QDQ_SANITIZE") or _env("QDQ_DEBUG_CYTHON") == "1"):
        return []
    if sys.platform.startswith("linux"):
        return ["-Wl,-s"]
    if sys.platform == "darwin":
        return ["-Wl,-x"]
    return []


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        omp_setting = _env("QDQ_OPENMP", "auto").lower()
        if ctype == "msvc":
            compile_args, omp_flags = ["/O2", "/fp:precise"], ["/openmp"]
            link_omp = []
        else:
            compile_args = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-strict-aliasing"]
            omp_flags = ["-fopenmp"]
            link_omp = ["-fopenmp"]
            march = _env("QDQ_MARCH")
            if march:
                compile_args.append(f"-march={march}")
            sanitize = _env("QDQ_SANITIZE")
            if sanitize:
                compile_args = [a for a in compile_args if not a.startswith("-O")]
                compile_args += ["-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={sanitize}",
                                 "-fno-sanitize-recover=all"]
                link_omp = link_omp + [f"-fsanitize={sanitize}"]
        strip_flags = [] if ctype == "msvc" else _strip_flags(self.debug)
        use_omp = False
        if omp_setting in ("1", "yes", "true", "on"):
            use_omp = True
        elif omp_setting in ("auto", ""):
            use_omp = ctype == "msvc" or _compiler_accepts(self.compiler, omp_flags)
            if not use_omp:
                print("qdq: OpenMP not available; building single-threaded kernels",
                      file=sys.stderr)
        # The histogram's block loops are short and run once per element: where a loop
        # happens to start decides how many fetch windows it spans, worth up to 1.25 x
        # on its float64 pass (benchmarks/results/compare_builds_align.txt). Starting every
        # loop on a 64-byte boundary takes that chance away.
        align = ["-falign-loops=64"]
        if ctype == "msvc" or not _compiler_accepts(self.compiler, align, _PLAIN_PROBE):
            align = []
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + (omp_flags if use_omp else []) \
                + (align if ext.name == "qdq._ext.histogram" else [])
            if ctype != "msvc":
                ext.extra_link_args = (link_omp if use_omp
                                       else [a for a in link_omp if a != "-fopenmp"]) \
                    + strip_flags
        super().build_extensions()


def _extensions():
    import numpy
    from Cython.Build import cythonize

    debug = _env("QDQ_DEBUG_CYTHON") == "1"
    # The compiled modules live in qdq/_ext/; their C sources are headers in qdq/_ext/csrc/,
    # included as "csrc/<name>.h".
    headers = sorted(glob.glob("qdq/_ext/csrc/*.h"))

    def ext(name, **kw):
        return Extension(f"qdq._ext.{name}", sources=[f"qdq/_ext/{name}.pyx"], depends=headers,
                         include_dirs=["qdq/_ext"], **kw)

    exts = [
        ext("kernels"),     # the op, its range and parameters, codes, gradient, error statistics
        ext("testing"),     # the scalar converters, for the exhaustive tests only
        ext("histogram"),   # the exact power-of-two histograms of calibration
        ext("dlpack"),      # DLPack capsules (torch, JAX, ...) to and from NumPy arrays
        # the calibration searches (mse, entropy) over per-channel histograms; they call
        # NumPy's own matmul and log loops, so they see NumPy's headers
        ext("search", define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]),
        # fresh outputs from a cache of freed buffers (NumPy's memory-handler API)
        ext("bufcache", define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                                       # the memory-handler API is NumPy 1.22's
                                       ("NPY_TARGET_VERSION", "NPY_1_22_API_VERSION")]),
    ]
    for e in exts:
        if e.name in ("qdq._ext.search", "qdq._ext.bufcache"):
            e.include_dirs.append(numpy.get_include())
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
