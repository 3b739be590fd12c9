// Bias correction in closed form: what HF-AdamW's step size must be after t steps, for every β.
#include <cmath>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <torch/torch.h>

#include "lorafa/optimizer.h"
#include "reference/projection.h"
#include "testing/eigen_tensor.h"
#include "testing/properties/generators.h"
#include "testing/error_bounds.h"
#include "reference/pseudo_inverse.h"

namespace {

using namespace lorafa;           // NOLINT: the properties read like the maths
using namespace lorafa::testing;  // NOLINT

// One well-conditioned float64 pair and the reference's projected gradient for a fixed g_B.
struct ConstantGradientCase {
  PairSpec spec;
  torch::Tensor A, B, grad;
  Eigen::ArrayXXd grad_hat;
};

ConstantGradientCase MakeCase() {
  ConstantGradientCase c;
  c.spec = *genWellConditionedPairSpec();
  c.A = MakeA(c.spec, torch::kFloat64);
  c.B = RandomMatrix(c.spec.out, c.spec.r, 0.1, c.spec.seed + 3, torch::kFloat64).requires_grad_();
  c.grad = RandomMatrix(c.spec.out, c.spec.r, c.spec.grad_scale, c.spec.seed + 7, torch::kFloat64);
  c.grad_hat = reference::ProjectedGradient(ToEigen(c.A), ToEigen(c.grad), c.spec.scaling, 1e-8).array();
  return c;
}

RC_GTEST_PROP(BiasCorrection, constantGradientStepSizesFollowTheClosedForm, ()) {
  ConstantGradientCase c = MakeCase();
  LoraFAOptions options = *genOptions();
  options.eps(0.0).weight_decay(0.0);
  const int steps = *rc::gen::inRange(1, 21);
  auto [beta1, beta2] = options.betas();
  const Eigen::ArrayXXd b0 = ToEigen(c.B).array();
  LoraFAOptimizer optimizer({{"p", c.A, c.B, c.spec.scaling}}, {}, options);
  // With g constant and eps = 0: m_k = (1−β1ᵏ)ĝ and v_k = (1−β2ᵏ)ĝ², so step k moves each coordinate
  // by step_size_k·(1−β1ᵏ)/√(1−β2ᵏ)·sign(ĝ); with bias correction step_size_k = lr·√(1−β2ᵏ)/(1−β1ᵏ)
  // and the move is exactly lr, without it the move is lr·(1−β1ᵏ)/√(1−β2ᵏ).
  double total_move = 0.0;
  for (int k = 1; k <= steps; ++k) {
    c.B.mutable_grad() = c.grad.clone();
    optimizer.step();
    const double bc1 = 1.0 - std::pow(beta1, k), bc2 = 1.0 - std::pow(beta2, k);
    total_move += options.correct_bias() ? options.lr() : options.lr() * bc1 / std::sqrt(bc2);
  }
  const Eigen::ArrayXXd expected = b0 - total_move * c.grad_hat.sign();
  // Rounding, in units of eps: the closed form's 1−βᵏ loses 1/(1−βᵏ) relative (cancellation), on
  // both sides (lorafa's step size uses it too: 4/bc1 + 4/bc2 per step); lorafa's recursive moments
  // carry ≤ 3k relative by step k, and each update rounds ≤ 8 more times; B's subtraction rounds at
  // |b0| + total_move once per step. With eps = 0 the move is lr·sign(ĝ), so ĝ's own error only
  // matters if it flips a sign, which needs |ĝ| below it: excluded below.
  RC_PRE((c.grad_hat.abs() > ProjectionErrorBound(ToEigen(c.A), reference::RegularisedGramPinv(ToEigen(c.A), 1e-8),
                                                  ToEigen(c.grad), c.spec.scaling, kFloat64Epsilon)).all());
  double relative = 0.0;
  for (int k = 1; k <= steps; ++k) {
    const double bc1 = 1.0 - std::pow(beta1, k), bc2 = 1.0 - std::pow(beta2, k);
    const double move = options.correct_bias() ? options.lr() : options.lr() * bc1 / std::sqrt(bc2);
    relative += move * (4.0 / bc1 + 4.0 / bc2 + 3.0 * k + 8.0);
  }
  const Eigen::ArrayXXd bound = kFloat64Epsilon * (relative + steps * (b0.abs() + total_move));
  const Eigen::ArrayXXd diff = (ToEigen(c.B).array() - expected).abs();
  RC_ASSERT((diff <= bound).all());
}

RC_GTEST_PROP(BiasCorrection, firstStepMovesEachCoordinateByTheClosedForm, ()) {
  ConstantGradientCase c = MakeCase();
  LoraFAOptions options = *genOptions();
  options.weight_decay(0.0);
  auto [beta1, beta2] = options.betas();
  const Eigen::ArrayXXd b0 = ToEigen(c.B).array();
  LoraFAOptimizer optimizer({{"p", c.A, c.B, c.spec.scaling}}, {}, options);
  c.B.mutable_grad() = c.grad.clone();
  optimizer.step();
  // m = (1−β1)ĝ, v = (1−β2)ĝ²: the move is step_size·(1−β1)|ĝ|/(√(1−β2)|ĝ| + eps), i.e.
  // lr·√(1−β2)|ĝ|/(√(1−β2)|ĝ| + eps) with bias correction (≈ lr when |ĝ| ≫ eps/√(1−β2)).
  const double root = std::sqrt(1.0 - beta2);
  const Eigen::ArrayXXd numerator = options.correct_bias() ? (options.lr() * root * c.grad_hat.abs()).eval()
                                                           : (options.lr() * (1.0 - beta1) * c.grad_hat.abs()).eval();
  const Eigen::ArrayXXd move = numerator / (root * c.grad_hat.abs() + options.eps());
  const Eigen::ArrayXXd actual_move = (b0 - ToEigen(c.B).array()) * c.grad_hat.sign();
  // ĝ's error E (ProjectionErrorBound) moves the ratio by at most its derivative in |ĝ|,
  // numerator·eps/(√(1−β2)|ĝ| + eps)²/|ĝ| per unit of |ĝ|, times E; the update's own roundings add
  // 8·eps relative to the move and eps at |B|.
  const Eigen::ArrayXXd E = ProjectionErrorBound(ToEigen(c.A), reference::RegularisedGramPinv(ToEigen(c.A), 1e-8),
                                                 ToEigen(c.grad), c.spec.scaling, kFloat64Epsilon);
  const Eigen::ArrayXXd slope = numerator / c.grad_hat.abs() * options.eps() /
                                (root * c.grad_hat.abs() + options.eps()).square();
  const Eigen::ArrayXXd bound = slope * E + 8.0 * kFloat64Epsilon * move + kFloat64Epsilon * b0.abs();
  const Eigen::ArrayXXd diff = (actual_move - move).abs();
  RC_ASSERT((diff <= bound).all());
}

}  // namespace
