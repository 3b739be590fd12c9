// bfloat16 rounding, to model arithmetic that PyTorch performs in bfloat16 (PEFT's autocast path).
//
//   float stored = RoundToBfloat16(0.1f);  // 0.10009765625: 8 significant bits, nearest-even
#pragma once

namespace lorafa::reference {

// The float nearest to `value` that bfloat16 can hold (round to nearest, ties to even), which is what
// c10::BFloat16's constructor computes. NaN stays NaN. Values from double go through float first, as
// PyTorch's double → bfloat16 conversion does.
float RoundToBfloat16(float value);

// Unit roundoff of bfloat16: 2^-8 (8 significant bits, 7 stored).
inline constexpr double kBfloat16UnitRoundoff = 1.0 / 256.0;

}  // namespace lorafa::reference
