#include "reference/bfloat16.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace lorafa::reference {

float RoundToBfloat16(float value) {
  if (std::isnan(value)) return value;
  // Written by hand: nothing kept here (Eigen 3.4's bfloat16 included) is documented to round as
  // PyTorch does. bfloat16 is the top 16 bits of a float; add half of the dropped part's range,
  // plus one more when the kept part is odd (ties to even), then truncate.
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const std::uint32_t lowest_kept_bit = (bits >> 16) & 1u;
  bits += 0x7FFFu + lowest_kept_bit;
  bits &= 0xFFFF0000u;
  float rounded;
  std::memcpy(&rounded, &bits, sizeof rounded);
  return rounded;
}

}  // namespace lorafa::reference
