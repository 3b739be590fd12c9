#include "lorafa/optimizer.h"

#include <utility>

#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include "lorafa/byte_checksum.h"
#include "lorafa/step.h"
#include "lorafa/version.h"

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

  // Everything that can throw or skip — a sparse gradient, a pseudo-inverse to (re)compute, a
  // non-finite gradient under skip_nonfinite — is settled for every group before any state changes.
  std::vector<std::vector<torch::Tensor>> projections(param_groups_.size());
  std::vector<std::vector<const LoraPair*>> pair_of(param_groups_.size());
  std::vector<torch::Tensor> guarded_grads;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const auto& group = param_groups_[g];
    const auto& options = static_cast<const LoraFAOptions&>(group.options());
    projections[g].resize(group.params().size());
    pair_of[g].assign(group.params().size(), nullptr);
    for (size_t i = 0; i < group.params().size(); ++i) {
      const torch::Tensor& grad = group.params()[i].grad();
      if (!grad.defined()) continue;  // includes a B without gradient, where PEFT raises
      TORCH_CHECK_VALUE(!grad.is_sparse(), "LoraFAOptimizer does not support sparse gradients");
      if (options.skip_nonfinite()) guarded_grads.push_back(grad);
      auto pair = pair_index_of_B_.find(group.params()[i].unsafeGetTensorImpl());
      if (pair == pair_index_of_B_.end()) continue;
      pair_of[g][i] = &pairs_[pair->second];
      projections[g][i] = projections_[pair->second].Matrix(pairs_[pair->second], grad.scalar_type(),
                                                            options.projection(), options.pinv_delta());
    }
  }
  if (!GradientsAreFinite(guarded_grads)) {
    ++skipped_steps_;
    return loss;
  }

  for (size_t g = 0; g < param_groups_.size(); ++g) {
    auto& group = param_groups_[g];
    LoraFAStepLists lists;
    for (size_t i = 0; i < group.params().size(); ++i) {
      torch::Tensor& param = group.params()[i];
      const torch::Tensor& grad = param.grad();
      if (!grad.defined()) continue;
      LoraFAParamState& state = StateFor(param);
      state.step(state.step() + 1);
      if (pair_of[g][i] == nullptr) {
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
      lists.projection.push_back(projections[g][i]);
      lists.scaling.push_back(pair_of[g][i]->scaling);
      lists.step_B.push_back(state.step());
    }
    LoraFAStep(lists, static_cast<const LoraFAOptions&>(group.options()));
  }
  return loss;
}

const LoraFAParamState* LoraFAOptimizer::pair_state(size_t index) const {
  auto it = state_.find(pairs_.at(index).B.unsafeGetTensorImpl());
  return it == state_.end() ? nullptr : static_cast<const LoraFAParamState*>(it->second.get());
}

std::vector<torch::Tensor> LoraFAOptimizer::other_params() const {
  std::vector<torch::Tensor> others;
  for (const auto& group : param_groups_) {
    for (const torch::Tensor& param : group.params()) {
      if (pair_index_of_B_.count(param.unsafeGetTensorImpl()) == 0) others.push_back(param);
    }
  }
  return others;
}

int64_t LoraFAOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& [param, state] : state_) {
    const auto& moments = static_cast<const LoraFAParamState&>(*state);
    bytes += static_cast<int64_t>(moments.exp_avg().nbytes() + moments.exp_avg_sq().nbytes());
  }
  for (const internal::CachedProjection& projection : projections_) bytes += projection.cached_bytes();
  return bytes;
}

void LoraFAOptimizer::save(torch::serialize::OutputArchive& archive) const {
  archive.write("lorafa/format_version", c10::IValue(kCheckpointFormat));
  archive.write("lorafa/version", c10::IValue(std::string(kVersion)));
  archive.write("lorafa/skipped_steps", c10::IValue(skipped_steps_));
  archive.write("lorafa/checksum", c10::IValue(static_cast<int64_t>(StateChecksum())));
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(archive, *this);
}

namespace {

// Whether every element of `t`'s view lies inside its storage. A damaged archive can describe a view
// (offset, strides) that reaches past the bytes it loaded; reading it would read other memory.
bool ViewFitsInStorage(const torch::Tensor& t) {
  if (t.numel() == 0) return true;
  if (!t.has_storage() || t.storage_offset() < 0) return false;
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) return false;
    last += (t.size(d) - 1) * t.stride(d);
  }
  return (last + 1) * static_cast<int64_t>(t.element_size()) <= static_cast<int64_t>(t.storage().nbytes());
}

}  // namespace

uint64_t LoraFAOptimizer::StateChecksum() const {
  ByteChecksum checksum;
  for (const auto& group : param_groups_) {
    const auto& options = static_cast<const LoraFAOptions&>(group.options());
    const auto [beta1, beta2] = options.betas();
    for (double value : {options.lr(), beta1, beta2, options.eps(), options.weight_decay(), options.pinv_delta()}) {
      checksum.AddValue(value);
    }
    for (bool flag : {options.correct_bias(), options.skip_nonfinite()}) checksum.AddValue(flag);
    checksum.AddValue(static_cast<int64_t>(options.projection()));
    for (const torch::Tensor& param : group.params()) {
      auto it = state_.find(param.unsafeGetTensorImpl());
      if (it == state_.end()) continue;
      const auto& state = static_cast<const LoraFAParamState&>(*it->second);
      checksum.AddValue(state.step());
      checksum.Add(state.exp_avg());
      checksum.Add(state.exp_avg_sq());
    }
  }
  return checksum.value();
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
        TORCH_CHECK_VALUE(moment.is_floating_point(), "loaded optimizer state has dtype ", moment.scalar_type(),
                          ", not a floating-point moment");
        TORCH_CHECK_VALUE(ViewFitsInStorage(moment), "loaded optimizer state describes a view of ", moment.sizes(),
                          " at offset ", moment.storage_offset(), " with strides ", moment.strides(),
                          " that reaches past its ", moment.has_storage() ? moment.storage().nbytes() : 0,
                          "-byte storage: the archive is damaged");
      }
    }
  }
}

void LoraFAOptimizer::load(torch::serialize::InputArchive& archive) {
  c10::IValue format(int64_t{0}), writer(std::string("before 0.1.0")), skipped(int64_t{0});
  if (archive.try_read("lorafa/format_version", format)) archive.try_read("lorafa/version", writer);
  TORCH_CHECK_VALUE(format.isInt() && format.toInt() >= 0 && format.toInt() <= kCheckpointFormat,
                    "this checkpoint has lorafa format version ", format, " (written by lorafa ",
                    writer.isString() ? writer.toStringRef() : std::string("of unknown version"), "); lorafa ",
                    kVersion, " reads formats 0 to ", kCheckpointFormat);
  archive.try_read("lorafa/skipped_steps", skipped);
  TORCH_CHECK_VALUE(skipped.isInt() && skipped.toInt() >= 0, "loaded skipped-step count is not a count: ", skipped);
  c10::IValue checksum;
  const bool has_checksum = archive.try_read("lorafa/checksum", checksum);
  TORCH_CHECK_VALUE(format.toInt() == 0 || (has_checksum && checksum.isInt()),
                    "this checkpoint (format ", format, ") has no state checksum: it is damaged");

  // Read into a copy first, so a bad archive leaves this optimizer exactly as it was.
  LoraFAOptimizer loaded(CopyStructureTag{}, *this);
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(archive, loaded);
  loaded.ValidateLoadedState();
  TORCH_CHECK_VALUE(!has_checksum || static_cast<uint64_t>(checksum.toInt()) == loaded.StateChecksum(),
                    "the checkpoint's options and state do not match its checksum: the file is damaged");

  skipped_steps_ = skipped.toInt();
  state_ = std::move(loaded.state_);
  for (size_t i = 0; i < param_groups_.size(); ++i) {
    param_groups_[i].set_options(loaded.param_groups_[i].options().clone());
  }
}

}  // namespace lorafa
