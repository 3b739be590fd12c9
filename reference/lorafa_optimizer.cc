#include "reference/lorafa_optimizer.h"

#include <stdexcept>
#include <utility>

#include "reference/projection.h"

namespace lorafa::reference {

ReferenceLoraFA::ReferenceLoraFA(AdamWHyperparameters hyper, double delta, ReferenceProjection projection)
    : hyper_(hyper), delta_(delta), projection_(projection) {}

void ReferenceLoraFA::AddPair(Eigen::MatrixXd A, Eigen::MatrixXd B, double scaling) {
  // PEFT's path adds δ as float32 (δ·eye(float32)); the exact path adds it as given.
  const double gram_delta = projection_ == ReferenceProjection::kExact ? delta_ : static_cast<float>(delta_);
  Eigen::MatrixXd gram_pinv = RegularisedGramPinv(A, gram_delta);
  pairs_.push_back({std::move(A), std::move(B), scaling, {}, std::move(gram_pinv)});
}

void ReferenceLoraFA::AddParam(Eigen::MatrixXd value) { params_.push_back({std::move(value), {}}); }

void ReferenceLoraFA::Step(const std::vector<Eigen::MatrixXd>& grad_B,
                           const std::vector<Eigen::MatrixXd>& other_grads) {
  if (grad_B.size() != pairs_.size() || other_grads.size() != params_.size()) {
    throw std::invalid_argument("ReferenceLoraFA::Step: one gradient per pair and per parameter");
  }
  for (size_t i = 0; i < pairs_.size(); ++i) {
    if (grad_B[i].size() == 0) continue;
    ReferencePair& pair = pairs_[i];
    const Eigen::MatrixXd grad_hat =
        projection_ == ReferenceProjection::kExact
            ? ProjectedGradientWithPinv(pair.gram_pinv, grad_B[i], pair.scaling)
            : PeftBfloat16ProjectedGradientWithPinv(pair.gram_pinv, grad_B[i], pair.scaling);
    HfAdamWStep(pair.B, grad_hat, pair.moments, hyper_);
  }
  for (size_t j = 0; j < params_.size(); ++j) {
    if (other_grads[j].size() == 0) continue;
    HfAdamWStep(params_[j].value, other_grads[j], params_[j].moments, hyper_);
  }
}

}  // namespace lorafa::reference
