// Kernel family 'attention' of the native backend (entry points registered in registerAttention).
#include "napi_util.h"

namespace lmf {

void registerAttention(napi_env, napi_value) {}

}  // namespace lmf
