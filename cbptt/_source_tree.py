"""A clear error when ``cbptt`` is imported from a source tree that was never built.

Python puts the current directory first on ``sys.path`` for ``python -m`` and
``python -c``. From the root of a clone, ``import cbptt`` therefore finds the
source folder ``cbptt/``, which holds ``.pyx`` files but no compiled modules,
instead of the installed package. Without this check the first compiled import
fails with a misleading "circular import" message; numpy and scipy refuse the
same way, with advice.
"""
import importlib.util
import os

# One compiled module every import of cbptt needs (see CMakeLists.txt).
_PROBE = "cbptt._scan"


def check_compiled():
    """Raise ImportError with advice if the package has no compiled modules.

    The probe asks the import system itself, so an editable install (whose
    finder maps the compiled modules from the build folder) passes. A module
    that is found but fails to load (a missing shared library, say) keeps its
    own, more precise, error.
    """
    spec = importlib.util.find_spec(_PROBE)
    if spec is not None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    raise ImportError(
        f"cbptt was imported from its source folder {here}, which holds no "
        "compiled modules: Python looks in the current directory first. "
        "Install it (pip install .) and run it from outside the source tree: "
        "the command `cbptt` (the demo) and `pytest` work from anywhere, "
        "`python -m cbptt` from any other directory. To work on the source "
        "in place, build it there: pip install --no-build-isolation -e .")
