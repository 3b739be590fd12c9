#include "lorafa/version.h"

namespace lorafa {

// LORAFA_VERSION comes from lorafa/version.bzl through the BUILD file's local_defines.
const char kVersion[] = LORAFA_VERSION;

}  // namespace lorafa
