// The whole LoRA-FA optimizer in float64: each pair's B takes an HF-AdamW step with its projected
// gradient, each other parameter a plain HF-AdamW step. A never changes, so (A Aᵀ + δI)⁺ is formed
// once per pair. No dtypes — the straightforward reading of the maths that the LibTorch
// implementation is checked against.
//
//   ReferenceLoraFA optimizer(hyper, /*delta=*/1e-8, ReferenceProjection::kExact);
//   optimizer.AddPair(A, B, /*scaling=*/2.0);
//   optimizer.Step({grad_B}, {});
#pragma once

#include <vector>

#include <Eigen/Dense>

#include "reference/hf_adamw.h"

namespace lorafa::reference {

enum class ReferenceProjection {
  kExact,           // float64 throughout
  kPeftBfloat16,    // PeftBfloat16ProjectedGradient, then float64 moments
};

struct ReferencePair {
  Eigen::MatrixXd A;  // (r, n), never changed
  Eigen::MatrixXd B;  // (m, r)
  double scaling;
  AdamWMoments moments;
  Eigen::MatrixXd gram_pinv;  // (A Aᵀ + δI)⁺ — a function of A and δ alone, so formed once
};

struct ReferenceParam {
  Eigen::MatrixXd value;
  AdamWMoments moments;
};

class ReferenceLoraFA {
 public:
  ReferenceLoraFA(AdamWHyperparameters hyper, double delta, ReferenceProjection projection);

  void AddPair(Eigen::MatrixXd A, Eigen::MatrixXd B, double scaling);
  void AddParam(Eigen::MatrixXd value);

  // One step. grad_B[i] is pair i's B-gradient, other_grads[j] parameter j's gradient; an empty
  // matrix means "no gradient": that tensor and its moments are left alone.
  void Step(const std::vector<Eigen::MatrixXd>& grad_B, const std::vector<Eigen::MatrixXd>& other_grads);

  const std::vector<ReferencePair>& pairs() const { return pairs_; }
  const std::vector<ReferenceParam>& params() const { return params_; }

 private:
  AdamWHyperparameters hyper_;
  double delta_;
  ReferenceProjection projection_;
  std::vector<ReferencePair> pairs_;
  std::vector<ReferenceParam> params_;
};

}  // namespace lorafa::reference
