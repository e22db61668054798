// Kernel family 'mmap' of the native backend (entry points registered in registerMmap).
#include "napi_util.h"

namespace lmf {

void registerMmap(napi_env, napi_value) {}

}  // namespace lmf
