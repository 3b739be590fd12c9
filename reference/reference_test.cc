// The float64 reference against hand-checked values and the numpy-generated golden run.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "reference/bfloat16.h"
#include "reference/hf_adamw.h"
#include "reference/lorafa_optimizer.h"
#include "reference/projection.h"
#include "reference/pseudo_inverse.h"
#include "reference/testdata/golden_r2.h"

namespace lorafa::reference {
namespace {

// Float64 tolerance for a handful of operations on O(1) numbers with condition number ≤ 10:
// eps (2.2e-16) × 10 (condition) × ~50 (operations over three steps) ≈ 1e-13; 1e-12 states the bound.
constexpr double kFloat64Tolerance = 1e-12;

void ExpectMatrixNear(const Eigen::MatrixXd& actual, const double* expected, double tolerance) {
  // The generator writes row-major values.
  for (Eigen::Index i = 0; i < actual.rows(); ++i) {
    for (Eigen::Index j = 0; j < actual.cols(); ++j) {
      EXPECT_NEAR(actual(i, j), expected[i * actual.cols() + j], tolerance) << "at (" << i << ", " << j << ")";
    }
  }
}

TEST(PseudoInverse, InvertsNonZeroSingularValuesAndDropsZeroOnes) {
  Eigen::MatrixXd diagonal(2, 2);
  diagonal << 2.0, 0.0, 0.0, 0.0;
  Eigen::MatrixXd expected(2, 2);
  expected << 0.5, 0.0, 0.0, 0.0;
  EXPECT_TRUE(PseudoInverse(diagonal).isApprox(expected, kFloat64Tolerance));

  // [[1,1],[1,1]] = 2·u·uᵀ with u = (1,1)/√2, so its pinv is (1/2)·u·uᵀ = [[1/4, 1/4], [1/4, 1/4]].
  Eigen::MatrixXd rank_one = Eigen::MatrixXd::Ones(2, 2);
  EXPECT_TRUE(PseudoInverse(rank_one).isApprox(Eigen::MatrixXd::Constant(2, 2, 0.25), kFloat64Tolerance));
}

TEST(PseudoInverse, AppliesTorchDefaultCutoff) {
  // σ = (1, 1e-17): 1e-17 < eps·2·1 ≈ 4.4e-16, so torch (and we) treat it as zero.
  Eigen::MatrixXd nearly_singular(2, 2);
  nearly_singular << 1.0, 0.0, 0.0, 1e-17;
  Eigen::MatrixXd expected(2, 2);
  expected << 1.0, 0.0, 0.0, 0.0;
  EXPECT_EQ(PseudoInverse(nearly_singular), expected);
}

TEST(Bfloat16, RoundsToNearestWithTiesToEven) {
  // bfloat16 keeps 7 fraction bits, so its spacing just above 1 is 2^-7.
  EXPECT_EQ(RoundToBfloat16(1.0f + std::ldexp(1.0f, -8)), 1.0f);                           // tie → even 1.0
  EXPECT_EQ(RoundToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));  // tie → even
  EXPECT_EQ(RoundToBfloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)),
            1.0f + std::ldexp(1.0f, -7));  // just above the tie rounds up
  EXPECT_EQ(RoundToBfloat16(-2.0f), -2.0f);
  EXPECT_TRUE(std::isnan(RoundToBfloat16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(ProjectedGradient, DiagonalCaseWorkedByHand) {
  // A = [[1,0,0],[0,2,0]]: A Aᵀ = diag(1, 4), inverse diag(1, 1/4). s = 2, so 1/s² = 1/4.
  // g_B = [[4, 8]] → ĝ = 1/4 · [4·1, 8·1/4] = [1, 0.5].
  Eigen::MatrixXd A(2, 3);
  A << 1, 0, 0, 0, 2, 0;
  Eigen::MatrixXd grad_b(1, 2);
  grad_b << 4, 8;
  Eigen::MatrixXd expected(1, 2);
  expected << 1.0, 0.5;
  EXPECT_TRUE(ProjectedGradient(A, grad_b, 2.0, /*delta=*/0.0).isApprox(expected, kFloat64Tolerance));
  // The full-weight update s·ĝ·A = 2·[1, 0.5]·A = [[2, 2, 0]].
  Eigen::MatrixXd full(1, 3);
  full << 2, 2, 0;
  EXPECT_TRUE(FullWeightUpdate(A, expected, 2.0).isApprox(full, kFloat64Tolerance));
}

TEST(HfAdamW, ConstantGradientWithZeroEpsMovesByExactlyLrPerStep) {
  // With eps = 0 and a constant gradient g, m_t = (1-β1ᵗ)g and v_t = (1-β2ᵗ)g², so the bias-corrected
  // update is lr·sign(g) at every step: three steps move each coordinate by 3·lr.
  AdamWHyperparameters hyper;
  hyper.lr = 0.1;
  hyper.eps = 0.0;
  Eigen::MatrixXd param = Eigen::MatrixXd::Zero(1, 2);
  Eigen::MatrixXd grad(1, 2);
  grad << 5.0, -0.01;
  AdamWMoments moments;
  for (int t = 0; t < 3; ++t) HfAdamWStep(param, grad, moments, hyper);
  EXPECT_NEAR(param(0, 0), -0.3, kFloat64Tolerance);
  EXPECT_NEAR(param(0, 1), 0.3, kFloat64Tolerance);
  EXPECT_EQ(moments.step, 3);
}

TEST(ReferenceLoraFA, MatchesNumpyGoldenRun) {
  Eigen::MatrixXd A(2, 3), B(2, 2), other(1, 3);
  A << 0.5, -1.0, 0.25, 1.5, 0.5, -0.75;
  B << 0.1, -0.2, 0.3, 0.05;
  other << 0.2, -0.4, 0.6;
  Eigen::MatrixXd grads_b[3] = {Eigen::MatrixXd(2, 2), Eigen::MatrixXd(2, 2), Eigen::MatrixXd(2, 2)};
  grads_b[0] << 0.4, -0.8, 1.2, 0.1;
  grads_b[1] << 0.3, -0.5, 0.9, 0.2;
  grads_b[2] << -0.2, 0.6, 0.4, -0.3;
  Eigen::MatrixXd grads_other[3] = {Eigen::MatrixXd(1, 3), Eigen::MatrixXd(1, 3), Eigen::MatrixXd(1, 3)};
  grads_other[0] << 0.05, -0.1, 0.2;
  grads_other[1] << 0.04, 0.02, -0.3;
  grads_other[2] << 0.0, 0.1, 0.1;

  AdamWHyperparameters hyper{/*lr=*/0.01, 0.9, 0.999, /*eps=*/1e-6, /*weight_decay=*/0.1, true};
  ExpectMatrixNear(ProjectedGradient(A, grads_b[0], 2.0, 1e-8), golden_r2::kProjectedGradientStep1,
                   kFloat64Tolerance);

  ReferenceLoraFA optimizer(hyper, /*delta=*/1e-8, ReferenceProjection::kExact);
  optimizer.AddPair(A, B, /*scaling=*/2.0);
  optimizer.AddParam(other);
  const double* expected_b[3] = {golden_r2::kBAfterStep1, golden_r2::kBAfterStep2, golden_r2::kBAfterStep3};
  const double* expected_other[3] = {golden_r2::kOtherAfterStep1, golden_r2::kOtherAfterStep2,
                                     golden_r2::kOtherAfterStep3};
  for (int t = 0; t < 3; ++t) {
    SCOPED_TRACE(testing::Message() << "step " << t + 1);
    optimizer.Step({grads_b[t]}, {grads_other[t]});
    ExpectMatrixNear(optimizer.pairs()[0].B, expected_b[t], kFloat64Tolerance);
    ExpectMatrixNear(optimizer.params()[0].value, expected_other[t], kFloat64Tolerance);
    EXPECT_EQ(optimizer.pairs()[0].A, A) << "A must never change";
  }
}

}  // namespace
}  // namespace lorafa::reference
