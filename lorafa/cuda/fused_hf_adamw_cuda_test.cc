// The CUDA kernel (fused_hf_adamw_cuda.cu) against the per-tensor path on the same GPU and against the
// CPU kernel. Without a CUDA device only the registration is checked; the rest skips, saying so.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lorafa/fused_hf_adamw.h"
#include "lorafa/optimizer.h"
#include "lorafa/projection.h"
#include "lorafa/step.h"

namespace lorafa {
namespace {

#define SKIP_WITHOUT_CUDA()                                                                             \
  if (!torch::cuda::is_available()) {                                                                   \
    GTEST_SKIP() << "no CUDA device: the CUDA kernel is compiled, linked and registered; its checks " \
                    "run on a GPU machine";                                                             \
  }

TEST(FusedHfAdamWCuda, IsRegisteredWhenLinked) { EXPECT_NE(internal::CudaFusedHfAdamW(), nullptr); }

struct Tensors {
  std::vector<torch::Tensor> params, directions, m, v;
};

Tensors MakeTensors(const std::vector<int64_t>& sizes, torch::ScalarType dtype, torch::Device device) {
  Tensors t;
  torch::manual_seed(0);
  for (int64_t size : sizes) {
    t.params.push_back((0.1 * torch::randn({size}, torch::kFloat64)).to(device, dtype));
    t.directions.push_back(torch::randn({size}, torch::kFloat64).to(device, dtype));
    t.m.push_back(torch::zeros({size}, torch::TensorOptions(device).dtype(dtype)));
    t.v.push_back(torch::zeros({size}, torch::TensorOptions(device).dtype(dtype)));
  }
  return t;
}

void StepOthers(Tensors& t, int64_t step, const LoraFAOptions& options, StepKernel kernel) {
  LoraFAStepLists lists;
  lists.params = t.params;
  lists.grads = t.directions;
  lists.exp_avg = t.m;
  lists.exp_avg_sq = t.v;
  lists.step.assign(t.params.size(), step);
  LoraFAStep(lists, options, kernel);
}

// Given the same direction, ATen's CUDA per-tensor operations and the kernel compute the same
// roundings (see the .cu): bit for bit, across chunk boundaries (65536) and in every dtype's vectors.
TEST(FusedHfAdamWCuda, UpdateIsBitIdenticalToThePerTensorPathOnTheGpu) {
  SKIP_WITHOUT_CUDA();
  const std::vector<int64_t> sizes = {1, 7, 513, 65536, 65537, 200003};
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kFloat64}) {
    for (double weight_decay : {0.0, 0.01}) {
      const LoraFAOptions options = LoraFAOptions(1e-3).weight_decay(weight_decay);
      Tensors fused = MakeTensors(sizes, dtype, torch::kCUDA), per_tensor = MakeTensors(sizes, dtype, torch::kCUDA);
      for (int64_t step = 1; step <= 3; ++step) {
        StepOthers(fused, step, options, StepKernel::kFused);
        StepOthers(per_tensor, step, options, StepKernel::kPerTensor);
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        EXPECT_TRUE(torch::equal(fused.params[i], per_tensor.params[i])) << "dtype " << dtype << " size " << sizes[i];
        EXPECT_TRUE(torch::equal(fused.m[i], per_tensor.m[i])) << "dtype " << dtype << " size " << sizes[i];
        EXPECT_TRUE(torch::equal(fused.v[i], per_tensor.v[i])) << "dtype " << dtype << " size " << sizes[i];
      }
    }
  }
}

// With β1 = 0 the first moment after one step is ĝ itself. The CUDA and CPU kernels both sum
// ĝ_ij = Σ_k g_ik·P_kj in k order with fused multiply-adds from zero (the CPU's AVX2 and AVX-512
// kernels; the portable one has no fused multiply-add), so their ĝ agree bit for bit;
// for every rank, including r > 64 (P read from global memory) and r not dividing the 65536-element
// chunk (rows that straddle two blocks).
TEST(FusedHfAdamWCuda, ProjectionEqualsTheCpuKernelsBitForBit) {
  SKIP_WITHOUT_CUDA();
  for (int64_t r : {1, 8, 24, 64, 96}) {
    for (torch::ScalarType dtype : {torch::kFloat32, torch::kFloat64}) {
      torch::manual_seed(r);
      const int64_t out = 4099;
      torch::Tensor A = torch::randn({r, 2 * r + 8}, dtype);
      std::vector<torch::Tensor> m_of_device;
      for (torch::Device device : {torch::Device(torch::kCPU), torch::Device(torch::kCUDA)}) {
        LoraPair pair{"p", A.to(device), torch::zeros({out, r}, torch::TensorOptions(device).dtype(dtype)), 2.0};
        LoraFAStepLists lists;
        lists.B = {pair.B};
        torch::manual_seed(r + 1);  // the same gradient on both devices
        lists.grad_B = {torch::randn({out, r}, torch::TensorOptions().dtype(dtype)).to(device)};
        lists.exp_avg_B = {torch::zeros_like(pair.B)};
        lists.exp_avg_sq_B = {torch::zeros_like(pair.B)};
        // The same P on both devices: the CPU's pseudo-inverse, copied.
        lists.projection = {internal::CachedProjection().Matrix({"p", A, pair.B.cpu(), 2.0}, dtype, Projection::kExact, 1e-8).to(device)};
        lists.scaling = {2.0};
        lists.step_B = {1};
        LoraFAStep(lists, LoraFAOptions(1e-3).betas({0.0, 0.999}));
        m_of_device.push_back(lists.exp_avg_B.front().cpu());
      }
      EXPECT_TRUE(torch::equal(m_of_device[0], m_of_device[1])) << "r " << r << " dtype " << dtype;
    }
  }
}

// An optimizer whose parameters move CPU → CUDA → CPU between steps: the state follows, and the run
// stays within rounding of one kept on the CPU. On CUDA the pseudo-inverse is recomputed (cuSOLVER, not
// LAPACK) and √v is IEEE rather than MKL's, so the directions differ by rounding only: the bound of
// testing/parity/precision.h for two correct implementations, 2·steps·u·(1024·lr + 8·|B|), derived
// there (projection error ≤ (r + 10κ)·u < 128u for this A: r = 8, κ(A Aᵀ) ≈ ((1+√(8/32))/(1−√(8/32)))² = 9;
// an update ≤ 4·lr; B's own roundings ≤ 8u·|B|), u = 2^-24.
TEST(FusedHfAdamWCuda, StateFollowsParametersToTheGpuAndBack) {
  SKIP_WITHOUT_CUDA();
  const LoraFAOptions options(1e-2);
  torch::manual_seed(3);
  torch::Tensor A = torch::randn({8, 32});
  torch::Tensor B_moving = (0.1 * torch::randn({16, 8})).requires_grad_(), B_cpu = B_moving.detach().clone().requires_grad_();
  LoraFAOptimizer moving({{"p", A, B_moving, 2.0}}, {}, options), staying({{"p", A, B_cpu, 2.0}}, {}, options);
  for (int step = 0; step < 3; ++step) {
    const torch::Device device = step == 1 ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    {
      torch::NoGradGuard no_grad;
      B_moving.set_data(B_moving.data().to(device));
      moving.pairs().front().A.set_data(moving.pairs().front().A.data().to(device));
    }
    torch::Tensor grad = torch::randn({16, 8});
    B_moving.mutable_grad() = grad.to(device);
    B_cpu.mutable_grad() = grad.clone();
    moving.step();
    staying.step();
    EXPECT_EQ(moving.pair_state(0)->exp_avg().device(), device);
  }
  const double u = std::ldexp(1.0, -24);
  const int steps = 3;
  const torch::Tensor bound = 2.0 * steps * u * (1024.0 * options.lr() + 8.0 * B_cpu.detach().abs());
  EXPECT_TRUE(torch::all((B_moving.detach().cpu() - B_cpu.detach()).abs() <= bound).item<bool>());
}

}  // namespace
}  // namespace lorafa
