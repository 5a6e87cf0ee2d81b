__version__ = "0.1.0"
# Importing the package registers, with transformers, the shipped model classes (tiny-llada, tiny-dream) and the
# `fair_calib` quantization method, so that `AutoModel.from_pretrained(student_dir)` returns a student. The `fair-calib`
# command (and `python -m fair_calib_nb`) defers these heavy imports until its arguments are parsed, so that `--help`
# answers at once; it imports the same modules before doing any work.
import os as _os, sys as _sys
if _os.path.basename(_sys.argv[0] if _sys.argv else '') not in ('fair-calib', '-m'):
    from . import models as _models, student as _student  # noqa: E402,F401
