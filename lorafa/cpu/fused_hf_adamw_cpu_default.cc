// The CPU kernel for any x86-64 (BUILD sets CPU_CAPABILITY=DEFAULT): at::vec's portable vectors.
#include "lorafa/cpu/fused_hf_adamw_cpu_kernel.h"
