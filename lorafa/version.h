// lorafa's version (set once, in lorafa/version.bzl, for the library and the Python wheel alike).
#pragma once

namespace lorafa {

extern const char kVersion[];

}  // namespace lorafa
