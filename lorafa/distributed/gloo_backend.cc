// c10d's Gloo backend, in a file of its own: ProcessGroupGloo.hpp needs USE_C10D_GLOO and Gloo's headers
// (Debian's libgloo-dev); the Gloo code itself is inside the torch wheel's libtorch_cpu.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "lorafa/distributed/process_group.h"

namespace lorafa::distributed::internal {

c10::intrusive_ptr<c10d::Backend> MakeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                  int world_size, const ProcessGroupOptions& options) {
  c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> gloo;
  if (options.gloo_hostname.empty()) {
    gloo = c10d::ProcessGroupGloo::Options::create_default(options.timeout);
  } else {
    gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(options.gloo_hostname));
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo);
}

}  // namespace lorafa::distributed::internal
