#include "lorafa/optimizer.h"

#include <utility>

#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/optim/serialize.h>

#include "lorafa/step.h"

namespace lorafa {
namespace {

std::vector<torch::Tensor> BsThenOthers(const std::vector<LoraPair>& pairs,
                                        const std::vector<torch::Tensor>& other_params) {
  std::vector<torch::Tensor> params;
  params.reserve(pairs.size() + other_params.size());
  for (const LoraPair& pair : pairs) params.push_back(pair.B);
  params.insert(params.end(), other_params.begin(), other_params.end());
  return params;
}

}  // namespace

LoraFAOptimizer::LoraFAOptimizer(std::vector<LoraPair> pairs, std::vector<torch::Tensor> other_params,
                                 LoraFAOptions options)
    : torch::optim::Optimizer(std::vector<torch::optim::OptimizerParamGroup>{},
                              std::make_unique<LoraFAOptions>(options)) {
  ValidateOptions(options);
  ValidatePairs(pairs, other_params);

  pairs_ = std::move(pairs);
  projections_.resize(pairs_.size());
  for (size_t i = 0; i < pairs_.size(); ++i) pair_index_of_B_[pairs_[i].B.unsafeGetTensorImpl()] = i;
  add_param_group(torch::optim::OptimizerParamGroup(BsThenOthers(pairs_, other_params)));
  // add_param_group keeps per-group options only for torch's own option types; set ours explicitly.
  param_groups_.back().set_options(std::make_unique<LoraFAOptions>(options));
}

LoraFAOptimizer::LoraFAOptimizer(CopyStructureTag, const LoraFAOptimizer& other)
    : torch::optim::Optimizer(std::vector<torch::optim::OptimizerParamGroup>{}, other.defaults().clone()),
      pairs_(other.pairs_),
      projections_(other.pairs_.size()),
      pair_index_of_B_(other.pair_index_of_B_) {
  for (const auto& group : other.param_groups_) param_groups_.emplace_back(group);
}

LoraFAParamState& LoraFAOptimizer::StateFor(const torch::Tensor& param) {
  auto& slot = state_[param.unsafeGetTensorImpl()];
  if (!slot) {
    auto fresh = std::make_unique<LoraFAParamState>();
    fresh->exp_avg(at::zeros_like(param, at::MemoryFormat::Preserve));
    fresh->exp_avg_sq(at::zeros_like(param, at::MemoryFormat::Preserve));
    slot = std::move(fresh);
  }
  auto& state = static_cast<LoraFAParamState&>(*slot);
  // The parameter moved (model.to(device/dtype)) since the state was made or loaded: follow it.
  if (state.exp_avg().device() != param.device() || state.exp_avg().scalar_type() != param.scalar_type()) {
    state.exp_avg(state.exp_avg().to(param.options()));
    state.exp_avg_sq(state.exp_avg_sq().to(param.options()));
  }
  return state;
}

torch::Tensor LoraFAOptimizer::step(LossClosure closure) {
  c10::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    c10::AutoGradMode enable_grad(true);
    loss = closure();
  }

  for (auto& group : param_groups_) {
    const auto& options = static_cast<const LoraFAOptions&>(group.options());
    // Everything that can throw — a sparse gradient, a pseudo-inverse to (re)compute — happens for
    // every parameter before any state changes.
    std::vector<torch::Tensor> projections(group.params().size());
    std::vector<const LoraPair*> pair_of(group.params().size(), nullptr);
    for (size_t i = 0; i < group.params().size(); ++i) {
      const torch::Tensor& grad = group.params()[i].grad();
      if (!grad.defined()) continue;  // includes a B without gradient, where PEFT raises
      TORCH_CHECK_VALUE(!grad.is_sparse(), "LoraFAOptimizer does not support sparse gradients");
      auto pair = pair_index_of_B_.find(group.params()[i].unsafeGetTensorImpl());
      if (pair == pair_index_of_B_.end()) continue;
      pair_of[i] = &pairs_[pair->second];
      projections[i] = projections_[pair->second].Matrix(pairs_[pair->second], grad.scalar_type(),
                                                         options.projection(), options.pinv_delta());
    }
    LoraFAStepLists lists;
    for (size_t i = 0; i < group.params().size(); ++i) {
      torch::Tensor& param = group.params()[i];
      const torch::Tensor& grad = param.grad();
      if (!grad.defined()) continue;
      LoraFAParamState& state = StateFor(param);
      state.step(state.step() + 1);
      if (pair_of[i] == nullptr) {
        lists.params.push_back(param);
        lists.grads.push_back(grad);
        lists.exp_avg.push_back(state.exp_avg());
        lists.exp_avg_sq.push_back(state.exp_avg_sq());
        lists.step.push_back(state.step());
        continue;
      }
      lists.B.push_back(param);
      lists.grad_B.push_back(grad);
      lists.exp_avg_B.push_back(state.exp_avg());
      lists.exp_avg_sq_B.push_back(state.exp_avg_sq());
      lists.projection.push_back(projections[i]);
      lists.scaling.push_back(pair_of[i]->scaling);
      lists.step_B.push_back(state.step());
    }
    LoraFAStep(lists, options);
  }
  return loss;
}

const LoraFAParamState* LoraFAOptimizer::pair_state(size_t index) const {
  auto it = state_.find(pairs_.at(index).B.unsafeGetTensorImpl());
  return it == state_.end() ? nullptr : static_cast<const LoraFAParamState*>(it->second.get());
}

void LoraFAOptimizer::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(archive, *this);
}

void LoraFAOptimizer::ValidateLoadedState() const {
  for (const auto& group : param_groups_) {
    ValidateOptions(static_cast<const LoraFAOptions&>(group.options()));
    for (const torch::Tensor& param : group.params()) {
      auto it = state_.find(param.unsafeGetTensorImpl());
      if (it == state_.end()) continue;
      const auto& state = static_cast<const LoraFAParamState&>(*it->second);
      TORCH_CHECK_VALUE(state.step() >= 0, "loaded optimizer state has a negative step: ", state.step());
      for (const torch::Tensor& moment : {state.exp_avg(), state.exp_avg_sq()}) {
        TORCH_CHECK_VALUE(moment.defined() && moment.sizes() == param.sizes(),
                          "loaded optimizer state has shape ",
                          moment.defined() ? moment.sizes() : c10::IntArrayRef{},
                          " for a parameter of shape ", param.sizes());
      }
    }
  }
}

void LoraFAOptimizer::load(torch::serialize::InputArchive& archive) {
  // Read into a copy first, so a bad archive leaves this optimizer exactly as it was.
  LoraFAOptimizer loaded(CopyStructureTag{}, *this);
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(archive, loaded);
  loaded.ValidateLoadedState();

  state_ = std::move(loaded.state_);
  for (size_t i = 0; i < param_groups_.size(); ++i) {
    param_groups_[i].set_options(loaded.param_groups_[i].options().clone());
  }
}

}  // namespace lorafa
