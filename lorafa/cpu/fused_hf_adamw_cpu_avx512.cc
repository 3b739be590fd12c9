// The CPU kernel for AVX-512 (BUILD sets CPU_CAPABILITY and the instruction-set flags).
#include "lorafa/cpu/fused_hf_adamw_cpu_kernel.h"
