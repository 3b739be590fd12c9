// Connecting the processes of a data-parallel run with c10d: the launcher's environment (torchrun's
// variables), the rendezvous store, and a process group — Gloo for CPU tensors, NCCL for CUDA tensors —
// whose timeout makes every rank fail with an error, rather than hang, when another rank dies or stops.
//
//   auto launch = lorafa::distributed::LaunchEnvironmentFromEnv();   // RANK, WORLD_SIZE, MASTER_ADDR, …
//   auto store = lorafa::distributed::ConnectStore(launch, std::chrono::seconds(60));
//   auto group = lorafa::distributed::MakeProcessGroup(store, launch.rank, launch.world_size, {});
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace lorafa::distributed {

// What a launcher (torchrun, or a script setting the same variables) tells each process.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;                  // the process's index on its machine (picks its CUDA device)
  std::string master_addr = "127.0.0.1";
  uint16_t master_port = 29500;
  bool agent_store = false;            // torchrun's agent already serves the store at the master port
  int restart_count = 0;               // torchrun's restart attempt; the store keys of each are apart
};

// Reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (required), LOCAL_RANK (default RANK), and
// torchrun's TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT. Throws c10::ValueError naming
// the variable and its value when one is missing or malformed (rank outside [0, WORLD_SIZE), …).
LaunchEnvironment LaunchEnvironmentFromEnv();

// The rendezvous store: a c10d::TCPStore at MASTER_ADDR:MASTER_PORT, served by rank 0 unless torchrun's
// agent serves it, under torchrun's per-attempt key prefix. Waits at most `timeout` for the others.
c10::intrusive_ptr<c10d::Store> ConnectStore(const LaunchEnvironment& launch, std::chrono::milliseconds timeout);

enum class Backend {
  kGloo,  // CPU tensors; built in
  kNccl,  // CUDA tensors; needs //lorafa/distributed:nccl linked
};

struct ProcessGroupOptions {
  Backend backend = Backend::kGloo;
  // How long any collective may wait for the other ranks before it throws (every rank's wait()).
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  // Gloo: the address this process listens on. Empty: the interfaces in GLOO_SOCKET_IFNAME, else
  // this machine's hostname, else loopback (c10d's default).
  std::string gloo_hostname;
};

// A process group of `world_size` ranks whose default backend is options.backend. Throws
// c10::ValueError for a bad rank or world size, or for NCCL when //lorafa/distributed:nccl is not linked.
c10::intrusive_ptr<c10d::ProcessGroup> MakeProcessGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                        int world_size, const ProcessGroupOptions& options);

namespace internal {

// The c10d backend for one Backend value; Gloo's is built in, NCCL's registers itself when linked.
using BackendFactory = c10::intrusive_ptr<c10d::Backend> (*)(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                              int world_size, const ProcessGroupOptions& options);
void RegisterBackend(Backend backend, BackendFactory factory);

}  // namespace internal
}  // namespace lorafa::distributed
