__version__ = "0.0.1"
# importing the package registers tiny-llada / tiny-dream with transformers' AutoConfig / AutoModel
from . import models as _models  # noqa: E402,F401
