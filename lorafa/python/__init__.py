"""lorafa: the LoRA-FA optimizer, with the C++ step of lorafa (the same arithmetic as its C++ API).

    from lorafa import create_lorafa_optimizer        # instead of: from peft.optimizers import ...
    optimizer = create_lorafa_optimizer(peft_model, r=16, lora_alpha=32, lr=2e-4)

See create_lorafa_optimizer and LoraFAOptimizer.
"""

import sys as _sys

import torch as _torch

from ._version import __version__, PYTHON_VERSION as _BUILT_FOR_PYTHON, TORCH_VERSION as _BUILT_FOR_TORCH

# The extension module is compiled for one CPython; another cannot load it.
if "%d.%d" % _sys.version_info[:2] != _BUILT_FOR_PYTHON:
    raise ImportError(
        f"lorafa {__version__} was built for Python {_BUILT_FOR_PYTHON}, but this is Python "
        f"{_sys.version_info[0]}.{_sys.version_info[1]}; install the lorafa wheel built for your Python"
    )

# The extension links this exact LibTorch; another one would fail in obscure ways (or worse, not fail).
if _torch.__version__.split("+")[0] != _BUILT_FOR_TORCH:
    raise ImportError(
        f"lorafa {__version__} was built for torch {_BUILT_FOR_TORCH}, but this environment has torch "
        f"{_torch.__version__}; install torch=={_BUILT_FOR_TORCH} or a lorafa wheel built for your torch"
    )

from .optimizer import LoraFAOptimizer  # noqa: E402
from .create import create_lorafa_optimizer  # noqa: E402

__all__ = ["LoraFAOptimizer", "create_lorafa_optimizer", "__version__"]
