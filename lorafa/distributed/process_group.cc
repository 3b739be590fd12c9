#include "lorafa/distributed/process_group.h"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace lorafa::distributed {
namespace {

// The variable's integer value; `fallback` when it is unset and a fallback is allowed.
int64_t IntegerFromEnv(const char* name, std::optional<int64_t> fallback = std::nullopt) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    TORCH_CHECK_VALUE(fallback.has_value(), "environment variable ", name,
                      " is not set; launch with torchrun or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
    return *fallback;
  }
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  TORCH_CHECK_VALUE(errno == 0 && end != text && *end == '\0', "environment variable ", name, "='", text,
                    "' is not an integer");
  return value;
}

std::array<std::atomic<internal::BackendFactory>, 2>& Factories() {
  static std::array<std::atomic<internal::BackendFactory>, 2> factories{};
  return factories;
}

}  // namespace

namespace internal {
c10::intrusive_ptr<c10d::Backend> MakeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                  int world_size, const ProcessGroupOptions& options);

void RegisterBackend(Backend backend, BackendFactory factory) {
  Factories()[static_cast<size_t>(backend)].store(factory);
}
}  // namespace internal

LaunchEnvironment LaunchEnvironmentFromEnv() {
  LaunchEnvironment launch;
  const int64_t world_size = IntegerFromEnv("WORLD_SIZE");
  TORCH_CHECK_VALUE(world_size >= 1 && world_size <= std::numeric_limits<int>::max(), "WORLD_SIZE=", world_size,
                    " is not a positive number of processes");
  const int64_t rank = IntegerFromEnv("RANK");
  TORCH_CHECK_VALUE(rank >= 0 && rank < world_size, "RANK=", rank, " is outside [0, WORLD_SIZE=", world_size, ")");
  const int64_t local_rank = IntegerFromEnv("LOCAL_RANK", rank);
  TORCH_CHECK_VALUE(local_rank >= 0 && local_rank <= rank, "LOCAL_RANK=", local_rank, " is outside [0, RANK=", rank,
                    "]");
  const int64_t port = IntegerFromEnv("MASTER_PORT");
  TORCH_CHECK_VALUE(port > 0 && port <= 65535, "MASTER_PORT=", port, " is not a TCP port");
  const char* addr = std::getenv("MASTER_ADDR");
  TORCH_CHECK_VALUE(addr != nullptr && *addr != '\0', "environment variable MASTER_ADDR is not set; launch with "
                    "torchrun or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const int64_t restart_count = IntegerFromEnv("TORCHELASTIC_RESTART_COUNT", 0);
  TORCH_CHECK_VALUE(restart_count >= 0, "TORCHELASTIC_RESTART_COUNT=", restart_count, " is negative");

  launch.rank = static_cast<int>(rank);
  launch.world_size = static_cast<int>(world_size);
  launch.local_rank = static_cast<int>(local_rank);
  launch.master_addr = addr;
  launch.master_port = static_cast<uint16_t>(port);
  launch.agent_store = agent_store != nullptr && std::string(agent_store) == "True";
  launch.restart_count = static_cast<int>(restart_count);
  return launch;
}

c10::intrusive_ptr<c10d::Store> ConnectStore(const LaunchEnvironment& launch, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = launch.master_port;
  options.isServer = !launch.agent_store && launch.rank == 0;
  options.numWorkers = launch.world_size;
  options.waitWorkers = !launch.agent_store;
  options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
  store->setTimeout(timeout);
  // torchrun's agent store is shared by every restart attempt; its workers keep their keys apart.
  if (!launch.agent_store) return store;
  return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(launch.restart_count), store);
}

c10::intrusive_ptr<c10d::ProcessGroup> MakeProcessGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                        int world_size, const ProcessGroupOptions& options) {
  TORCH_CHECK_VALUE(world_size >= 1, "world size ", world_size, " is not a positive number of processes");
  TORCH_CHECK_VALUE(rank >= 0 && rank < world_size, "rank ", rank, " is outside [0, ", world_size, ")");
  TORCH_CHECK_VALUE(options.timeout.count() > 0, "process group timeout ", options.timeout.count(),
                    " ms is not positive");
  internal::BackendFactory factory = options.backend == Backend::kGloo
                                         ? &internal::MakeGlooBackend
                                         : Factories()[static_cast<size_t>(options.backend)].load();
  TORCH_CHECK_VALUE(factory != nullptr, "the NCCL process group needs //lorafa/distributed:nccl linked into this "
                    "binary (it carries c10d's NCCL backend)");

  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world_size);
  const auto type = options.backend == Backend::kGloo ? c10d::ProcessGroup::BackendType::GLOO
                                                      : c10d::ProcessGroup::BackendType::NCCL;
  const auto device = options.backend == Backend::kGloo ? c10::DeviceType::CPU : c10::DeviceType::CUDA;
  group->setBackend(device, type, factory(store, rank, world_size, options));
  group->setDefaultBackend(type);
  return group;
}

}  // namespace lorafa::distributed
