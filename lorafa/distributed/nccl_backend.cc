// c10d's NCCL backend for CUDA tensors, registered with MakeProcessGroup when this file is linked
// (//lorafa/distributed:nccl). NCCL's header comes from the nvidia-nccl wheel torch depends on; the code
// is inside the torch wheel's libtorch_cuda.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "lorafa/distributed/process_group.h"

namespace lorafa::distributed::internal {
namespace {

c10::intrusive_ptr<c10d::Backend> MakeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                  int world_size, const ProcessGroupOptions& options) {
  auto nccl = c10d::ProcessGroupNCCL::Options::create();
  nccl->timeout = options.timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, nccl);
}

const bool kRegistered = (RegisterBackend(Backend::kNccl, &MakeNcclBackend), true);

}  // namespace
}  // namespace lorafa::distributed::internal
