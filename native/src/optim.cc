// Kernel family 'optim' of the native backend (entry points registered in registerOptim).
#include "napi_util.h"

namespace lmf {

void registerOptim(napi_env, napi_value) {}

}  // namespace lmf
