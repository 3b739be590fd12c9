#!/usr/bin/env bash
# `bazel run //tools:install` end to end: installs into a temporary prefix, checks the package is
# relocatable and self-contained, then configures, builds and runs tools/cmake/example — copied outside
# the workspace, knowing lorafa only through find_package(lorafa) — and checks that a LibTorch of
# another version or C++ ABI is refused at configure time with a message saying so.
set -euo pipefail

python=$(head -n 1 "$TEST_SRCDIR/torch/python_executable")
work="${TEST_TMPDIR:-$(mktemp -d)}/install"
prefix="$work/prefix"
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v cmake > /dev/null || fail "cmake is not installed: run tools/setup.sh"

echo "== install"
"$TEST_SRCDIR/lorafa/tools/install" --prefix="$prefix"
find "$prefix" | sed "s|^$prefix/||" | sort
[ -z "$(find "$prefix" -type l)" ] || fail "the package holds symbolic links: $(find "$prefix" -type l)"
for library in "$prefix"/lib/*.so*; do
  runpath=$(readelf -d "$library" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
  [ "$runpath" = '$ORIGIN' ] || fail "$(basename "$library") has RUNPATH '$runpath', not \$ORIGIN"
done
grep -rlE '#include [<"](absl/|pybind11/|Python\.h)' "$prefix/include" && fail "an installed header needs Abseil or Python"
[ -f "$prefix/include/lorafa/lorafa.h" ] || fail "lorafa/lorafa.h is not installed"
readelf -Ws --dyn-syms "$prefix/lib/liblorafa.so" | grep 'CudaFusedHfAdamW' > /dev/null \
  || fail "liblorafa.so does not carry the CUDA kernel"

# torch's own CMake config (the CUDA wheel's) needs a CUDA toolkit; the nvidia-* wheels beside torch are
# one, once their libraries have the unversioned names find_library looks for.
cuda_root=$("$python" -c 'import nvidia, os; print([os.path.join(p, "cu13") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "cu13", "bin"))][0])')
toolkit="$work/cuda"
mkdir -p "$toolkit/lib"
for part in bin include nvvm; do ln -s "$cuda_root/$part" "$toolkit/$part"; done
for library in "$cuda_root"/lib/*; do
  name=$(basename "$library")
  ln -sf "$library" "$toolkit/lib/$name"
  case "$name" in *.so.*) ln -sf "$library" "$toolkit/lib/${name%%.so.*}.so" ;; esac
done
torch_cmake=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
# A CUDA toolkit this machine may have under /usr/local is ignored: the test sees what a fresh one has.
cuda_flags=(-DCUDAToolkit_ROOT="$toolkit" -DCUDA_TOOLKIT_ROOT_DIR="$toolkit" -DCMAKE_CUDA_COMPILER="$toolkit/bin/nvcc"
            -DCMAKE_SYSTEM_IGNORE_PREFIX_PATH=/usr/local -DCMAKE_IGNORE_PREFIX_PATH="/usr/local;/usr/local/cuda")

echo "== a CMake project outside the workspace"
cp -r "$TEST_SRCDIR/lorafa/tools/cmake/example" "$work/app"
cmake -S "$work/app" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix;$torch_cmake" \
  "${cuda_flags[@]}" > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configure failed"; }
cmake --build "$work/build" -j 2 > "$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build failed"; }
readelf -d "$work/build/train" | grep '\[liblorafa.so\]' > /dev/null || fail "train does not link liblorafa.so by its soname"
(cd "$work" && env -u LD_LIBRARY_PATH "$work/build/train" "$work/optimizer.pt") || fail "the example failed"

# A stand-in for another LibTorch: a TorchConfig that find_package(Torch) accepts, of version $1 and ABI $2.
fake_torch() {
  local dir="$work/fake-torch-$1-abi$2"
  mkdir -p "$dir"
  cat > "$dir/TorchConfig.cmake" <<CONFIG
set(TORCH_INSTALL_PREFIX "$dir")
set(TORCH_LIBRARIES "")
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=$2")
CONFIG
  printf 'set(PACKAGE_VERSION "%s")\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n' "$1" > "$dir/TorchConfigVersion.cmake"
  echo "$dir"
}
expect_refused() {
  local torch_dir=$1 message=$2 log="$work/refused.log"
  if cmake -S "$work/app" -B "$work/build-refused" -DCMAKE_PREFIX_PATH="$prefix;$torch_dir" > "$log" 2>&1; then
    cat "$log"; fail "configure accepted $torch_dir"
  fi
  # CMake wraps the message over lines; read it as one.
  tr '\n' ' ' < "$log" | tr -s ' ' | grep "$message" > /dev/null || { cat "$log"; fail "configure failed without saying: $message"; }
  rm -rf "$work/build-refused"
  echo "refused as expected: $message"
}
echo "== another LibTorch is refused at configure time"
expect_refused "$(fake_torch 2.10.0 1)" "was built against LibTorch 2.11.*found .*LibTorch 2.10.0"
expect_refused "$(fake_torch 2.11.0 0)" "uses _GLIBCXX_USE_CXX11_ABI=0"
echo "PASS"
