"""Where the real vLLM stack writes at run time, under a container's environment. Runs inside the venv of a
supported release (`.venv-vllm`, `.venv-vllm-0.33`).

Started with the container's env (as the kubelet starts it), it prints JSON: name -> the directory each writer
uses. The uid of the pod has no passwd entry in the image, so `pwd` lookups fail here as they would there.
"""

from __future__ import annotations

import json
import pwd
import sys
import tempfile
from typing import Any, NoReturn


def no_passwd_entry(uid: int) -> NoReturn:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


pwd.getpwuid = no_passwd_entry


def writers() -> dict[str, Any]:
    import getpass

    import flashinfer.jit.env as flashinfer_env
    import huggingface_hub.constants as hf
    import triton.knobs
    import vllm.envs as vllm_envs
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from vllm.v1.structured_output.utils import get_outlines_cache_path

    return {
        "getpass.getuser": getpass.getuser(),
        "tempfile (first candidate)": tempfile._candidate_tempdir_list()[0],  # type: ignore[attr-defined]
        "torch inductor cache": default_cache_dir(),
        "triton cache": triton.knobs.cache.dir,
        "vllm cache root": vllm_envs.VLLM_CACHE_ROOT,
        "vllm config root": vllm_envs.VLLM_CONFIG_ROOT,
        "vllm rpc base path": vllm_envs.VLLM_RPC_BASE_PATH,
        "vllm assets cache": vllm_envs.VLLM_ASSETS_CACHE,
        "flashinfer cache": str(flashinfer_env.FLASHINFER_CACHE_DIR),
        "outlines cache": get_outlines_cache_path(),
        "huggingface hub cache": hf.HF_HUB_CACHE,
    }


if __name__ == "__main__":
    try:
        answer = writers()
    except Exception as error:  # the failure itself is the answer
        answer = {"error": f"{type(error).__name__}: {error}"}
    json.dump(answer, sys.stdout)
