#include "lorafa/step.h"

#include <optional>

#include <c10/util/Exception.h>

#include "lorafa/fused_hf_adamw.h"
#include "lorafa/hf_adamw.h"
#include "lorafa/projection.h"

namespace lorafa {
namespace {

void CheckLengths(const LoraFAStepLists& lists) {
  const size_t pairs = lists.B.size();
  TORCH_CHECK_VALUE(lists.grad_B.size() == pairs && lists.exp_avg_B.size() == pairs &&
                        lists.exp_avg_sq_B.size() == pairs && lists.projection.size() == pairs &&
                        lists.scaling.size() == pairs && lists.step_B.size() == pairs,
                    "LoraFAStep: the pair lists have different lengths (", pairs, " B tensors)");
  const size_t others = lists.params.size();
  TORCH_CHECK_VALUE(lists.grads.size() == others && lists.exp_avg.size() == others &&
                        lists.exp_avg_sq.size() == others && lists.step.size() == others,
                    "LoraFAStep: the parameter lists have different lengths (", others, " parameters)");
}

bool IsFloatOrDouble(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

// Routes each entry to the CPU kernel, the CUDA kernel or the per-tensor path.
class Router {
 public:
  Router(const LoraFAOptions& options, StepKernel kernel) : options_(options), kernel_(kernel) {
    const auto [beta1, beta2] = options.betas();
    coefficients_ = {beta1, beta2, options.eps(), internal::HfAdamWDecayFactor(options), options.weight_decay() > 0.0};
  }

  // The kernel's lists for this entry, or nullptr where it must take the per-tensor path.
  internal::FusedUpdateLists* FusedListsFor(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& m,
                                            const at::Tensor& v) {
    if (kernel_ != StepKernel::kFused) return nullptr;
    for (const at::Tensor* t : {&grad, &m, &v}) {
      if (t->device() != param.device() || t->scalar_type() != param.scalar_type() || t->sizes() != param.sizes())
        return nullptr;
    }
    if (!param.is_contiguous() || !m.is_contiguous() || !v.is_contiguous()) return nullptr;
    if (param.is_cpu()) return &cpu_;
    if (param.is_cuda() && internal::CudaFusedHfAdamW() != nullptr) return &cuda_;
    return nullptr;
  }

  static void Add(internal::FusedUpdateLists& lists, const at::Tensor& param, const at::Tensor& direction,
                  const at::Tensor& m, const at::Tensor& v, const at::Tensor& projection, double step_size) {
    lists.params.push_back(param);
    lists.grads.push_back(direction.contiguous());
    lists.exp_avgs.push_back(m);
    lists.exp_avg_sqs.push_back(v);
    lists.projections.push_back(projection);
    lists.step_sizes.push_back(step_size);
  }

  void PerTensor(at::Tensor param, const at::Tensor& direction, at::Tensor m, at::Tensor v, double step_size) {
    if (!operands_) operands_.emplace(options_);
    internal::HfAdamWUpdate(param, direction, m, v, step_size, options_, *operands_);
  }

  void RunKernels() {
    if (!cpu_.params.empty()) internal::FusedHfAdamWCpu(cpu_, coefficients_);
    if (!cuda_.params.empty()) internal::CudaFusedHfAdamW()(cuda_, coefficients_);
  }

 private:
  const LoraFAOptions& options_;
  StepKernel kernel_;
  internal::HfAdamWCoefficients coefficients_;
  internal::FusedUpdateLists cpu_, cuda_;
  std::optional<internal::HfAdamWOperands> operands_;  // a few small allocations: made when needed
};

}  // namespace

void LoraFAStep(const LoraFAStepLists& lists, const LoraFAOptions& options, StepKernel kernel) {
  CheckLengths(lists);
  Router router(options, kernel);
  const bool exact = options.projection() == Projection::kExact;

  for (size_t i = 0; i < lists.B.size(); ++i) {
    at::Tensor B = lists.B[i], m = lists.exp_avg_B[i], v = lists.exp_avg_sq_B[i];
    const at::Tensor& grad = lists.grad_B[i];
    const double step_size = internal::HfAdamWStepSize(options, lists.step_B[i]);
    internal::FusedUpdateLists* fused = router.FusedListsFor(B, grad, m, v);
    if (exact && fused != nullptr) {
      Router::Add(*fused, B, grad, m, v, lists.projection[i], step_size);  // ĝ = g·P inside the kernel
      continue;
    }
    const at::Tensor direction =
        internal::ProjectGradient(grad, lists.projection[i], options.projection(), lists.scaling[i]);
    // kPeftBf16: PEFT's product above; the update fused only where it is bit for bit PEFT's.
    if (fused != nullptr && IsFloatOrDouble(B)) {
      Router::Add(*fused, B, direction, m, v, at::Tensor(), step_size);
    } else {
      router.PerTensor(B, direction, m, v, step_size);
    }
  }

  for (size_t j = 0; j < lists.params.size(); ++j) {
    at::Tensor param = lists.params[j], m = lists.exp_avg[j], v = lists.exp_avg_sq[j];
    const double step_size = internal::HfAdamWStepSize(options, lists.step[j]);
    internal::FusedUpdateLists* fused = router.FusedListsFor(param, lists.grads[j], m, v);
    // kExact computes reduced-precision tensors in float; kPeftBf16 keeps PEFT's per-operation rounding.
    if (fused != nullptr && (exact || IsFloatOrDouble(param))) {
      Router::Add(*fused, param, lists.grads[j], m, v, at::Tensor(), step_size);
    } else {
      router.PerTensor(param, lists.grads[j], m, v, step_size);
    }
  }
  router.RunKernels();
}

}  // namespace lorafa
