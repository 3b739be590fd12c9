#!/usr/bin/env bash
# One-time (idempotent) setup of a fresh Debian 12 machine for lorafa:
#   - Debian packages: Bazel 4.2.3 (bazel-bootstrap) and the C++ libraries used as local repositories;
#   - a virtualenv with the pinned torch (whose LibTorch we link) and peft, under ~/.cache/lorafa/venvs
#     (or $LORAFA_VENVS), linked as .venv.
# Usage: tools/setup.sh            (from anywhere inside the checkout; root or sudo)
# Environment: LORAFA_BASE_PYTHON  interpreter to build the venv from (default: pyenv 3.12, else 3.11,
#                                  else python3 on PATH; it must be built with a shared libpython).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo_root/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

debian_packages=(
  bazel-bootstrap          # Bazel 4.2.3; every external repository is local (see WORKSPACE)
  g++ python3-dev
  python3-venv             # Debian's python3.11, where pyenv has none: //tools:wheels_test makes venvs of it
  libabsl-dev              # flags, status, strings
  libgtest-dev libgmock-dev
  libbenchmark-dev
  librapidcheck-dev        # property-based tests (static librapidcheck.a + rapidcheck/gtest.h)
  libeigen3-dev            # the float64 reference's linear algebra
  patchelf                 # //tools:gpu_bundle points the bundled binaries' RUNPATH into the bundle
  libgloo-dev              # headers for c10d's Gloo process group (lorafa/distributed); torch carries the code
  cmake                    # //tools:install_test builds a CMake project against the installed package
)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pick_base_python() {
  if [ -n "${LORAFA_BASE_PYTHON:-}" ]; then echo "$LORAFA_BASE_PYTHON"; return; fi
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" v
  for v in 3.12 3.11; do
    local found
    found=$(ls -d "$pyenv_root"/versions/"$v".*/bin/python3 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$found" ]; then echo "$found"; return; fi
  done
  command -v python3
}

# The venv lives at a path of its own, keyed by the requirements and the base interpreter, and .venv
# links to it. Every checkout with the same requirements then builds against the same paths, so Bazel's
# disk cache serves a second checkout's compiles, links and test results (and it shares the download).
req="$repo_root/tools/requirements.txt"
base=$(pick_base_python)
key=$( { cat "$req"; readlink -f "$base"; } | sha256sum | cut -c1-16)
store="${LORAFA_VENVS:-$HOME/.cache/lorafa/venvs}/$key"
mkdir -p "$(dirname "$store")"
(
  flock 9  # two checkouts set up at once: one installs, the other waits for it
  if [ ! -f "$store/.complete" ]; then
    shared=$("$base" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')
    if [ "$shared" != "1" ]; then
      echo "setup: $base has no shared libpython; embedding needs one. Set LORAFA_BASE_PYTHON." >&2
      exit 1
    fi
    echo "setup: creating $store from $base, with $req (torch is a large download the first time)"
    rm -rf "$store"
    "$base" -m venv "$store"
    "$store/bin/python3" -m pip install -q --upgrade pip
    "$store/bin/python3" -m pip install -q -r "$req"
    touch "$store/.complete"
  fi
) 9> "$store.lock"
if [ -e "$venv" ] && [ ! -L "$venv" ]; then
  echo "setup: replacing the checkout's own .venv folder with a link to $store"
  rm -rf "$venv"
fi
previous=$(readlink "$venv" || true)
ln -sfn "$store" "$venv"
# A checkout already built against another venv: have Bazel read the configured Python anew.
if [ -n "$previous" ] && [ "$previous" != "$store" ] && [ -e "$repo_root/bazel-out" ]; then
  (cd "$repo_root" && bazel sync --configure)
fi

"$venv/bin/python3" -c 'import torch, peft.optimizers.lorafa; print("setup: torch", torch.__version__, "peft", peft.__version__)'
echo "setup: done. Next: bazel test //..."
